//! MLflow's bounds on a GraphQL document, checked on the parsed document before anything
//! is validated or run (MLflow's `graphql_no_batching.check_query_safety`): one request must
//! not batch many queries through aliases or root fields, nor nest or fan out without end.
//! The order of the checks and the messages are MLflow's, so a client (and MLflow's tests)
//! sees the same refusal; depth and the total of selections stop the scan where they are
//! passed, root fields and aliases are compared once the whole document is scanned.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use async_graphql::parser::types::{ExecutableDocument, Field, FragmentDefinition, Selection, SelectionSet};
use async_graphql::{Name, Positioned};

/// Nesting deeper than this is refused (MLflow's `_MAX_DEPTH`, not configurable there).
pub(crate) const MAX_DEPTH: usize = 10;
/// Fields in the whole document (MLflow's `_MAX_SELECTIONS`).
pub(crate) const MAX_SELECTIONS: usize = 1000;
const ROOT_FIELDS_VAR: &str = "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS";
const ALIASES_VAR: &str = "MLFLOW_SERVER_GRAPHQL_MAX_ALIASES";
/// MLflow's defaults for the two bounds its environment variables set.
const DEFAULT_ROOT_FIELDS: usize = 10;
const DEFAULT_ALIASES: usize = 10;

/// The two bounds MLflow lets an operator raise, read once from the same environment
/// variables MLflow reads (its refusal names them, so they must work here too).
struct Bounds {
    root_fields: usize,
    aliases: usize,
}

fn bounds() -> &'static Bounds {
    static BOUNDS: OnceLock<Bounds> = OnceLock::new();
    BOUNDS.get_or_init(|| Bounds {
        root_fields: from_env(ROOT_FIELDS_VAR, DEFAULT_ROOT_FIELDS),
        aliases: from_env(ALIASES_VAR, DEFAULT_ALIASES),
    })
}

fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// What the scan counts of a document.
#[derive(Debug, PartialEq, Eq)]
struct Scan {
    root_fields: usize,
    /// The most aliased fields in any one selection set (fragments at that level included).
    max_aliases: usize,
}

/// Why a document is refused, in MLflow's words; `None` when it may run.
pub(crate) fn check(doc: &ExecutableDocument) -> Option<String> {
    let scan = match scan(doc) {
        Ok(scan) => scan,
        Err(message) => return Some(message),
    };
    let b = bounds();
    let (what, var, limit, got) = if scan.root_fields > b.root_fields {
        ("root fields", ROOT_FIELDS_VAR, b.root_fields, scan.root_fields)
    } else if scan.max_aliases > b.aliases {
        ("aliases", ALIASES_VAR, b.aliases, scan.max_aliases)
    } else {
        return None;
    };
    Some(format!(
        "GraphQL queries should have at most {limit} {what}, got {got} {what}. \
         To increase the limit, set the {var} environment variable."
    ))
}

fn scan(doc: &ExecutableDocument) -> Result<Scan, String> {
    let mut out = Scan { root_fields: 0, max_aliases: 0 };
    let mut total = 0usize;
    // In document order, as MLflow walks its definitions (the parser keeps named
    // operations in a map).
    let mut operations: Vec<_> = doc.operations.iter().map(|(_, op)| op).collect();
    operations.sort_by_key(|op| (op.pos.line, op.pos.column));
    for op in operations {
        // Last in, first out, as MLflow's stack: which bound a bad document passes first
        // decides the message it gets.
        let mut stack: Vec<(&SelectionSet, usize)> = vec![(&op.node.selection_set.node, 1)];
        while let Some((set, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(format!("Query exceeds maximum depth of {MAX_DEPTH}"));
            }
            let (fields, aliases) = fields_of(set, &doc.fragments);
            for field in fields {
                if depth == 1 {
                    out.root_fields += 1;
                }
                if !field.selection_set.node.items.is_empty() {
                    stack.push((&field.selection_set.node, depth + 1));
                }
                total += 1;
                if total > MAX_SELECTIONS {
                    return Err(format!("Query exceeds maximum total selections of {MAX_SELECTIONS}"));
                }
            }
            out.max_aliases = out.max_aliases.max(aliases);
        }
    }
    Ok(out)
}

/// The fields of one level, with those of its inline fragments and fragment spreads (each
/// named fragment once), and how many of them are aliased: aliases spread over sibling
/// fragments still count together.
fn fields_of<'a>(
    set: &'a SelectionSet,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
) -> (Vec<&'a Field>, usize) {
    let mut fields = Vec::new();
    let mut aliases = 0;
    let mut seen: HashSet<&str> = HashSet::new();
    let mut queue: VecDeque<&Selection> = set.items.iter().map(|s| &s.node).collect();
    while let Some(selection) = queue.pop_front() {
        match selection {
            Selection::Field(f) => {
                aliases += usize::from(f.node.alias.is_some());
                fields.push(&f.node);
            }
            Selection::InlineFragment(inline) => {
                queue.extend(inline.node.selection_set.node.items.iter().map(|s| &s.node));
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if seen.insert(name) {
                    if let Some(fragment) = fragments.get(name) {
                        queue.extend(fragment.node.selection_set.node.items.iter().map(|s| &s.node));
                    }
                }
            }
        }
    }
    (fields, aliases)
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn checked(query: &str) -> Option<String> {
        check(&parse_query(query).expect("a valid document"))
    }

    #[test]
    fn a_plain_query_passes_and_is_counted() {
        let doc = parse_query("query q { a: x { y } b: x { y } z { ...F } } fragment F on T { c: y d: y }")
            .expect("document");
        assert_eq!(scan(&doc), Ok(Scan { root_fields: 3, max_aliases: 2 }));
        assert_eq!(checked("{ x { y } }"), None);
    }

    #[test]
    fn each_bound_is_refused_with_mlflows_message() {
        let roots: Vec<String> = (0..12).map(|i| format!("k{i}: test {{ output }}")).collect();
        let refused = checked(&format!("{{ {} }}", roots.join(" "))).unwrap_or_default();
        assert!(refused.starts_with("GraphQL queries should have at most 10 root fields, got 12 root fields."));
        let aliased: Vec<String> = (0..11).map(|i| format!("e{i}: experiment {{ name }}")).collect();
        let refused = checked(&format!("{{ x {{ {} }} }}", aliased.join(" "))).unwrap_or_default();
        assert!(refused.contains("queries should have at most 10 aliases"), "{refused}");
        let deep = (0..12).fold("name".to_string(), |inner, _| format!("name {{ {inner} }}"));
        assert_eq!(checked(&format!("{{ {deep} }}")).as_deref(), Some("Query exceeds maximum depth of 10"));
        let wide: Vec<String> = (0..1002).map(|i| format!("f{i} {{ name }}")).collect();
        assert_eq!(
            checked(&format!("{{ x {{ {} }} }}", wide.join(" "))).as_deref(),
            Some("Query exceeds maximum total selections of 1000")
        );
    }

    #[test]
    fn aliases_hidden_in_sibling_fragments_count_together() {
        let spread: Vec<String> = (0..11).map(|i| format!("... on T {{ a{i}: y }}")).collect();
        let refused = checked(&format!("{{ x {{ {} }} }}", spread.join(" "))).unwrap_or_default();
        assert!(refused.contains("at most 10 aliases, got 11 aliases"), "{refused}");
        // A fragment that spreads itself ends at the depth bound rather than looping.
        let cyclic = "{ x { ...F } } fragment F on T { y { ...F } }";
        assert_eq!(checked(cyclic).as_deref(), Some("Query exceeds maximum depth of 10"));
    }
}
