use super::*;

fn entry(path: &str, content: &[u8]) -> FileEntry {
    FileEntry { path: path.into(), size: content.len() as u64, mode: 0o644, digest: Digest::of_bytes(content) }
}

#[test]
fn digest_is_independent_of_entry_order() {
    let a = Manifest::new(SnapshotKind::Dir, vec![entry("a", b"1"), entry("b/c", b"2")]);
    let b = Manifest::new(SnapshotKind::Dir, vec![entry("b/c", b"2"), entry("a", b"1")]);
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn same_path_other_content_is_another_snapshot() {
    let a = Manifest::new(SnapshotKind::File, vec![entry("train.csv", b"1,2")]);
    let b = Manifest::new(SnapshotKind::File, vec![entry("train.csv", b"1,3")]);
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn a_small_tree_keeps_the_one_object_form_and_its_digest() {
    let a = Manifest::new(SnapshotKind::Dir, vec![entry("x", b"1"), entry("y", b"2")]);
    let enc = a.encode();
    // The bytes every earlier repro wrote: snapshots taken before chunking keep their names.
    assert_eq!(enc.root, serde_json::to_vec(&a).expect("json"));
    assert!(enc.chunks.is_empty());
    assert_eq!(Manifest::from_bytes(&enc.root).expect("parses"), a);
    assert!(Manifest::from_bytes(b"{not json").is_err());
    assert!(Manifest::from_bytes(b"{\"kind\":\"dir\"}").is_err());
    assert!(parse(b"{\"manifest_version\":3}").is_err_and(|e| e.to_string().contains("upgrade repro")));
}

fn big(n: usize, tag: &str) -> Vec<FileEntry> {
    (0..n).map(|i| entry(&format!("d{:02}/f{i:06}.bin", i % 37), format!("{tag}{i}").as_bytes())).collect()
}

fn read_back(enc: &EncodedManifest) -> Result<Manifest, CoreError> {
    let ManifestObject::Chunked(root) = parse(&enc.root)? else { panic!("a big tree is chunked") };
    let by: std::collections::HashMap<&Digest, &Vec<u8>> = enc.chunks.iter().map(|(d, b)| (d, b)).collect();
    Manifest::assemble(root, |r| Ok(by[&r.digest].clone()), |e| e)
}

#[test]
fn a_big_tree_is_chunked_and_reads_back_whole() {
    let m = Manifest::new(SnapshotKind::Dir, big(50_000, ""));
    let enc = m.encode();
    assert!(enc.chunks.len() > 20 && enc.chunks.len() < 100, "{} chunks", enc.chunks.len());
    assert!(enc.root.len() < 20_000, "root {} bytes", enc.root.len());
    let back = read_back(&enc).expect("assembles");
    assert_eq!(back.entries, m.entries);
    assert_eq!(back.manifest_version, CHUNKED_VERSION);
    assert_eq!(back.digest(), enc.digest, "read back, it encodes to the same objects");
    assert!(Manifest::from_bytes(&enc.root).is_err(), "a root alone is not the whole manifest");
    assert!(parse(&enc.chunks[0].1).is_err(), "a chunk is never taken for a manifest");
}

#[test]
fn one_change_rewrites_one_chunk_and_an_insert_at_most_two() {
    let base = big(30_000, "");
    let old = Manifest::new(SnapshotKind::Dir, base.clone()).encode();
    let old_chunks: std::collections::HashSet<&Digest> = old.chunks.iter().map(|(d, _)| d).collect();
    let new_chunks = |entries: Vec<FileEntry>| {
        let enc = Manifest::new(SnapshotKind::Dir, entries).encode();
        enc.chunks.iter().filter(|(d, _)| !old_chunks.contains(d)).count()
    };
    let mut changed = base.clone();
    changed[12_345].digest = Digest::of_bytes(b"other");
    assert_eq!(new_chunks(changed), 1);
    let mut added = base.clone();
    added.push(entry("d05/f012345a.bin", b"new"));
    assert!(new_chunks(added) <= 2);
    let mut removed = base;
    removed.remove(777);
    assert!(new_chunks(removed) <= 2);
}

#[test]
fn a_chunk_that_is_not_what_the_root_says_is_refused() {
    let enc = Manifest::new(SnapshotKind::Dir, big(20_000, "")).encode();
    // Two chunks' bytes swapped under each other's names.
    let mut swapped = enc.clone();
    let (a, b) = (swapped.chunks[0].1.clone(), swapped.chunks[1].1.clone());
    swapped.chunks[0].1 = b;
    swapped.chunks[1].1 = a;
    assert!(read_back(&swapped).is_err());
    // A root whose totals do not add up.
    let mut root: serde_json::Value = serde_json::from_slice(&enc.root).expect("json");
    root["files"] = serde_json::json!(1);
    assert!(parse(&serde_json::to_vec(&root).expect("json")).is_err());
    // Chunks out of order.
    let mut root: serde_json::Value = serde_json::from_slice(&enc.root).expect("json");
    root["chunks"].as_array_mut().expect("list").swap(0, 1);
    assert!(parse(&serde_json::to_vec(&root).expect("json")).is_err());
}

#[test]
fn chunk_sizes_stay_bounded() {
    let paths: Vec<String> = (0..100_000).map(|i| format!("p/{i:07}")).collect();
    let ranges = chunk_ranges(paths.iter().map(String::as_str));
    assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 100_000);
    assert!(ranges.iter().all(|r| !r.is_empty() && r.len() <= CHUNK_MAX));
    let mean = 100_000 / ranges.len();
    assert!((500..2000).contains(&mean), "mean chunk {mean}");
}

#[test]
fn a_borrowed_entry_serializes_as_the_entry_it_stands_for() {
    let e = entry("dir/\"odd\" ü.csv", b"content");
    let borrowed = EntryRef { path: &e.path, size: e.size, mode: e.mode, digest: RawDigest(e.digest.raw()) };
    assert_eq!(chunk_bytes(&[borrowed]), chunk_bytes(std::slice::from_ref(&e)));
}

#[test]
fn compare_finds_what_was_added_removed_and_changed() {
    let a = Manifest::new(SnapshotKind::Dir, vec![entry("a", b"1"), entry("b", b"2"), entry("c", b"3")]);
    let mut moded = entry("c", b"3");
    moded.mode = 0o755;
    let b = Manifest::new(SnapshotKind::Dir, vec![entry("b", b"changed"), moded, entry("d", b"4")]);
    let d = compare(&a.entries, &b.entries);
    assert_eq!(d.removed.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["a"]);
    assert_eq!(d.added.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["d"]);
    assert_eq!(d.changed.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!((d.changed[1].before.mode, d.changed[1].after.mode), (0o644, 0o755));
    assert_eq!(compare(&a.entries, &a.entries), EntryDiff::default());
}
