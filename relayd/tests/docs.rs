//! The operator's documentation against the options struct: docs/configuration.md and
//! docs/relayd.example.toml name every option, and every default the docs print is the
//! one relayd uses (`Options::defaults`, i.e. `relayd --print-config-defaults`).

use clap::CommandFactory;
use relayd::config::{Options, COMMAND_LINE_ONLY};

fn doc(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn flags() -> Vec<String> {
    Options::command()
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| *l != "help" && *l != "version")
        .map(String::from)
        .collect()
}

/// The defaults, key by key, written as the docs write them: `127.0.0.1`, `30000`, `auto`.
fn defaults() -> Vec<(String, String)> {
    let table: toml::Table = toml::from_str(&Options::defaults_toml().unwrap()).unwrap();
    let show = |v: &toml::Value| match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => {
            a.iter().map(|v| v.as_str().map(String::from).unwrap_or(v.to_string())).collect::<Vec<_>>().join(", ")
        }
        v => v.to_string(),
    };
    table.iter().map(|(k, v)| (k.clone(), show(v))).collect()
}

/// Where `--flag` is written as a flag in `text` (not as the prefix of a longer one).
fn mentions(text: &str, flag: &str) -> Vec<usize> {
    let pat = format!("--{flag}");
    text.match_indices(&pat)
        .map(|(i, _)| i)
        .filter(|&i| !text[i + pat.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-'))
        .collect()
}

#[test]
fn configuration_md_lists_every_flag() {
    let text = doc("configuration.md");
    let flags = flags();
    for flag in &flags {
        assert!(!mentions(&text, flag).is_empty(), "docs/configuration.md does not mention --{flag}");
    }
    // and the table names no flag relayd does not have
    for row in text.lines().filter(|l| l.starts_with("| `--")) {
        let first = row.split(" | ").next().unwrap_or("");
        for (i, _) in first.match_indices("`--") {
            let name: String = first[i + 3..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            assert!(flags.contains(&name), "docs/configuration.md: --{name} is not a flag of relayd");
        }
    }
}

#[test]
fn the_example_file_shows_every_key() {
    let text = doc("relayd.example.toml");
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim_start().split_once(" = ").map(|(k, _)| k.trim()))
        .collect();
    for flag in flags().iter().filter(|f| !COMMAND_LINE_ONLY.contains(&f.as_str())) {
        assert!(keys.contains(&flag.as_str()), "docs/relayd.example.toml has no `{flag} = ` line (set or commented)");
    }
}

/// The example sets its keys to the defaults, except where it shows something else on
/// purpose.
#[test]
fn the_example_file_sets_the_defaults() {
    const ON_PURPOSE: &[&str] = &["interface"]; // a dual-stack lab
    let example: toml::Table = toml::from_str(&doc("relayd.example.toml")).unwrap();
    let d: toml::Table = toml::from_str(&Options::defaults_toml().unwrap()).unwrap();
    for (k, v) in &example {
        if let Some(want) = d.get(k).filter(|_| !ON_PURPOSE.contains(&k.as_str())) {
            assert_eq!(v, want, "docs/relayd.example.toml: {k}");
        }
    }
    // and it is a valid configuration
    toml::from_str::<Options>(&doc("relayd.example.toml")).unwrap();
}

/// The table's default column: the row whose first cell starts with `--key`.
#[test]
fn the_table_prints_the_defaults() {
    let text = doc("configuration.md");
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| l.split(" | ").map(|c| c.trim_matches(|c| c == '|' || c == ' ').replace('`', "")).collect())
        .collect();
    for (key, want) in defaults() {
        let row = rows
            .iter()
            .find(|r| {
                r[0].strip_prefix(&format!("--{key}")).is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
            })
            .unwrap_or_else(|| panic!("docs/configuration.md: no table row starts with `--{key}`"));
        assert_eq!(row[1], want, "docs/configuration.md: the default of --{key}");
    }
}

/// Prose that quotes a default, "`--latch-grace`, default 1000 ms" or "`--max-calls`
/// (default 20000", anywhere in docs/.
#[test]
fn prose_quotes_the_defaults() {
    let defaults = defaults();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
        for (key, want) in &defaults {
            let pat = format!("`--{key}`");
            for (i, _) in text.match_indices(&pat) {
                let rest = &text[i + pat.len()..];
                // "`--x`, default N" or "`--x` (default N" or "`--x` (what it is, default N"
                let clause = match rest.strip_prefix(", ") {
                    Some(r) => &r[..r.find([',', ')', ';']).unwrap_or(r.len())],
                    None => match rest.strip_prefix(" (") {
                        Some(r) => &r[..r.find(')').unwrap_or(r.len())],
                        None => continue,
                    },
                };
                let Some(at) = clause.find("default ") else { continue };
                let got: String =
                    clause[at + 8..].chars().take_while(|c| c.is_ascii_alphanumeric() || ".:".contains(*c)).collect();
                let got = got.trim_end_matches(['.', ':']);
                assert_eq!(got, want, "{}: `--{key}` quoted with default {got}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "the prose quotes at least the latching and limit defaults ({checked} found)");
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// docs/*.md and README.md whole, and the comment lines of every .rs file of the
/// workspace's members: (file, text).
fn docs_and_comments() -> Vec<(std::path::PathBuf, String)> {
    let root = workspace_root();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out.push((root.join("README.md"), std::fs::read_to_string(root.join("README.md")).unwrap()));
    let mut dirs: Vec<std::path::PathBuf> = members().iter().map(|m| root.join(m)).collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let comments: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("//")).collect();
                out.push((path, comments.join("\n")));
            }
        }
    }
    out
}

fn members() -> Vec<String> {
    let cargo: toml::Table =
        toml::from_str(&std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap()).unwrap();
    cargo["workspace"]["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect()
}

/// Every path docs and comments name (`core/src/flow/mod.rs`, `backend/tests/no_alloc.rs`,
/// `ebpf/`) exists: from the workspace root, the naming file's folder, or its crate (a
/// doc: any crate). And every package `-p` selects is one of the workspace.
#[test]
fn docs_and_comments_name_only_what_exists() {
    let root = workspace_root();
    let packages: Vec<String> = members()
        .iter()
        .map(|m| {
            let t: toml::Table =
                toml::from_str(&std::fs::read_to_string(root.join(m).join("Cargo.toml")).unwrap()).unwrap();
            t["package"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    const EXTS: &[&str] = &[".rs", ".md", ".toml", ".py", ".sh", ".c", ".h"];
    let mut stale = Vec::new();
    for (file, text) in docs_and_comments() {
        let bases: Vec<std::path::PathBuf> = {
            let mut b = vec![root.clone(), file.parent().unwrap().to_path_buf()];
            if let Some(src) = file.ancestors().find(|a| a.ends_with("src")) {
                b.extend([src.to_path_buf(), src.parent().unwrap().to_path_buf()]);
            }
            if file.extension().is_some_and(|e| e == "md") {
                // docs may name a crate's files from the crate (backend's "uring" folder)
                b.extend(members().iter().flat_map(|m| [root.join(m), root.join(m).join("src")]));
            }
            b
        };
        for tok in text.split(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c))) {
            let tok = tok.trim_end_matches('.');
            let is_path = tok.contains('/')
                && !tok.starts_with(['/', '.', '-'])
                && !tok.contains("//")
                && !tok.starts_with("OUT_DIR/")
                // rtpengine's source tree, cited where relayd follows it
                && !tok.starts_with("daemon/")
                && !tok.starts_with("t/")
                && (EXTS.iter().any(|e| tok.ends_with(e)) || (tok.ends_with('/') && tok.len() > 2));
            if is_path && !bases.iter().any(|b| b.join(tok).exists()) {
                stale.push(format!("{}: {tok}", file.strip_prefix(&root).unwrap_or(&file).display()));
            }
        }
        for (i, _) in text.match_indices("-p ") {
            let name: String =
                text[i + 3..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
            if name.starts_with(|c: char| c.is_ascii_lowercase()) && !packages.contains(&name) {
                stale.push(format!("{}: -p {name}", file.strip_prefix(&root).unwrap_or(&file).display()));
            }
        }
    }
    assert!(stale.is_empty(), "names of files or packages that do not exist:\n{}", stale.join("\n"));
}
