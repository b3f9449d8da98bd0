//! A Jupyter notebook as a training script: its code is its code cells' sources, nothing
//! else. Outputs, execution counts, cell ids and metadata change every time a notebook is
//! saved after running, and none of them changes what the notebook computes.

use std::path::Path;

use crate::{CaptureError, Result};

/// The code cells' sources of an `.ipynb` in one canonical text: each cell as `# %%` and
/// its source (the "percent" form Jupytext, VS Code and Spyder read as cells), ending in a
/// newline. Its digest is the notebook's script digest; the text is stored beside the
/// whole file, so an auditor can read the code without a notebook viewer.
pub fn code_cells(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let invalid = |message: String| CaptureError::Invalid { path: path.to_path_buf(), message };
    let nb: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("not a notebook (invalid JSON: {e}); open it in Jupyter and save it again")))?;
    let format = nb.get("nbformat").and_then(serde_json::Value::as_u64);
    if format != Some(4) {
        let got = format.map_or_else(|| "no nbformat".to_string(), |f| format!("nbformat {f}"));
        return Err(invalid(format!(
            "{got}: repro reads nbformat 4 notebooks; convert it with `jupyter nbconvert --to notebook --nbformat 4`"
        )));
    }
    let cells = nb
        .get("cells")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| invalid("a notebook without a cells list; open it in Jupyter and save it again".into()))?;
    let mut out = String::new();
    for (n, cell) in cells.iter().enumerate() {
        if cell.get("cell_type").and_then(serde_json::Value::as_str) != Some("code") {
            continue;
        }
        // nbformat stores a source as one string or as a list of lines (each with its "\n").
        let source = match cell.get("source") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(lines)) => {
                let mut s = String::new();
                for l in lines {
                    s.push_str(
                        l.as_str().ok_or_else(|| invalid(format!("cell {}: a source line that is not text", n + 1)))?,
                    );
                }
                s
            }
            None => String::new(),
            Some(_) => return Err(invalid(format!("cell {}: a source that is not text", n + 1))),
        };
        out.push_str("# %%\n");
        out.push_str(&source);
        if !source.is_empty() && !source.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nb(cells: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
            .expect("json")
    }

    #[test]
    fn only_code_cells_count() {
        let a = nb(serde_json::json!([
            {"cell_type": "markdown", "source": "# Title", "metadata": {}},
            {"cell_type": "code", "source": ["import numpy\n", "x = 1"], "outputs": [], "execution_count": null, "metadata": {}},
            {"cell_type": "code", "source": "print(x)", "outputs": [], "execution_count": null, "metadata": {}},
        ]));
        let code = code_cells(&a, Path::new("nb.ipynb")).expect("parse");
        assert_eq!(String::from_utf8(code.clone()).expect("utf-8"), "# %%\nimport numpy\nx = 1\n# %%\nprint(x)\n");
        // Outputs, counts, ids, markdown and metadata are not code.
        let b = nb(serde_json::json!([
            {"cell_type": "markdown", "source": "# Another title", "metadata": {"x": 1}},
            {"cell_type": "code", "id": "abc", "source": "import numpy\nx = 1", "execution_count": 7,
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi"}], "metadata": {"tags": []}},
            {"cell_type": "code", "source": ["print(x)"], "outputs": [], "execution_count": 8, "metadata": {}},
        ]));
        assert_eq!(code_cells(&b, Path::new("nb.ipynb")).expect("parse"), code);
        let c = nb(serde_json::json!([{"cell_type": "code", "source": "print(2)", "outputs": [], "metadata": {}}]));
        assert_ne!(code_cells(&c, Path::new("nb.ipynb")).expect("parse"), code);
    }

    #[test]
    fn bad_notebooks_name_the_file() {
        for (bytes, says) in [
            (&b"{not json"[..], "invalid JSON"),
            (&br#"{"nbformat": 3, "worksheets": []}"#[..], "nbformat 3"),
            (&br#"{"nbformat": 4}"#[..], "without a cells list"),
            (&br#"{"nbformat": 4, "cells": [{"cell_type": "code", "source": 5}]}"#[..], "cell 1"),
        ] {
            let e = code_cells(bytes, Path::new("dir/nb.ipynb")).expect_err("bad").to_string();
            assert!(e.starts_with("dir/nb.ipynb: ") && e.contains(says), "{e}");
        }
    }
}
