//! The engine's layers point down: a module never imports one above it. Crate boundaries keep
//! the server, the JetStream backend and the simulator out of the engine (the compiler refuses
//! an import of a crate that is not a dependency); inside the engine, this test reads every
//! source file and fails when a module names a higher one through a `crate::` path.
//!
//! The order, lowest first (a module may import its own layer and every layer before it):
//!
//! ```text
//! telemetry, budget, truth < protocol < storage < config < log < lens < receipt < actors < node < lib.rs
//! ```
//!
//! Comments are skipped (a doc link may point anywhere); code is not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The layers, lowest first; modules of one entry are peers.
const LAYERS: &[&[&str]] = &[
    &["telemetry", "budget", "truth"],
    &["protocol"],
    &["storage"],
    &["config"],
    &["log"],
    &["lens"],
    &["receipt"],
    &["actors"],
    &["node"],
    &["lib"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module `file` belongs to: `src/<module>/...` or `src/<module>.rs`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules `line` names through `crate::` paths, grouped imports included.
fn imports(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in line.match_indices("crate::") {
        let rest = &line[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            found.extend(group.split(',').filter_map(|part| {
                let name = part.trim().split("::").next()?.trim();
                (!name.is_empty()).then(|| name.to_owned())
            }));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

/// Every upward import in the engine's sources, as "file:line: from -> to".
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let from = module_of(src, &file);
        let Some(from_rank) = rank(&from) else {
            bad.push(format!(
                "{}: module {from} is in no layer of LAYERS",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for to in imports(line) {
                // The crate root re-exports `Config` and `Node`: they belong to their modules.
                let to = match to.as_str() {
                    "Config" => "config".to_owned(),
                    "Node" => "node".to_owned(),
                    _ => to,
                };
                let Some(to_rank) = rank(&to) else {
                    bad.push(format!(
                        "{}:{}: {from} imports {to}, in no layer",
                        file.display(),
                        number + 1
                    ));
                    continue;
                };
                if to_rank > from_rank {
                    bad.push(format!("{}:{}: {from} imports {to}", file.display(), number + 1));
                }
            }
        }
    }
    bad
}

#[test]
fn no_engine_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
}

#[test]
fn an_upward_import_is_caught() {
    let dir = tempfile::TempDir::new().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir(&storage).unwrap();
    std::fs::write(
        storage.join("mod.rs"),
        "//! Docs may link [`Node`](crate::node::Node).\nuse crate::protocol::Hash;\nuse crate::{budget, node::Node};\n",
    )
    .unwrap();
    let bad = violations(dir.path());
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].ends_with("storage imports node"), "{bad:?}");
}
