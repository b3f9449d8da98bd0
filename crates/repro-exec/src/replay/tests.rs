//! Tests of the replay's path handling.

use super::*;

#[test]
fn record_paths_cannot_leave_the_tree() {
    let root = Path::new("/t");
    assert_eq!(inside(root, "data/x.csv"), Some(PathBuf::from("/t/data/x.csv")));
    assert_eq!(inside(root, "."), Some(PathBuf::from("/t/.")));
    assert_eq!(inside(root, "../etc/passwd"), None);
    assert_eq!(inside(root, "/etc/passwd"), None);
    assert_eq!(inside(root, "a/../../b"), None);
}
