//! `search_runs`, experiment and registry filters and `order_by` items as a client sends them: no input panics, every
//! error is one line, and whatever parses renders to canonical text that parses the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repro_core::search::{
    matches_registry, parse_experiment_filter, parse_experiment_order_by, parse_filter, parse_order_by,
    parse_order_by_item, parse_page_token, parse_registry_filter, render_filter, sql_like, RegistryView,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_filter(text) {
        Ok(clauses) => {
            let rendered = render_filter(&clauses);
            let again = parse_filter(&rendered).expect("a rendered filter parses");
            assert_eq!(again, clauses, "{rendered:?}");
        }
        Err(e) => assert!(!e.message().chars().any(char::is_control), "{e:?}"),
    }
    if let Ok(clauses) = parse_experiment_filter(text) {
        assert_eq!(parse_experiment_filter(&render_filter(&clauses)).as_ref(), Ok(&clauses));
    }
    // Registered-model and model-version filters: the same round trip, and matching never panics.
    if let Ok(clauses) = parse_registry_filter(text) {
        assert_eq!(parse_registry_filter(&render_filter(&clauses)).as_ref(), Ok(&clauses));
        let tags = std::collections::BTreeMap::from([("k".to_string(), "v".to_string())]);
        let view = RegistryView { name: "m", run_id: Some("r"), source_path: Some("s"), version: Some(3), tags: &tags };
        let _ = matches_registry(&clauses, &view);
    }
    // Each line an order_by item, as the repeated `order_by` field carries them.
    let items: Vec<String> = text.lines().map(str::to_string).collect();
    let _ = parse_order_by(&items);
    let _ = parse_experiment_order_by(&items);
    for item in &items {
        match parse_order_by_item(item) {
            Ok(order) => assert_eq!(parse_order_by_item(&order.to_string()).as_ref(), Ok(&order)),
            Err(e) => assert!(!e.message().chars().any(char::is_control), "{e:?}"),
        }
    }
    let _ = parse_page_token(text);
    // The first line a LIKE pattern, the rest the text it is matched against.
    let (pattern, subject) = text.split_once('\n').unwrap_or((text, ""));
    let _ = sql_like(pattern, subject, data.len() % 2 == 0);
});
