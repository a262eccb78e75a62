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
    for flag in flags() {
        assert!(!mentions(&text, &flag).is_empty(), "docs/configuration.md does not mention --{flag}");
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
