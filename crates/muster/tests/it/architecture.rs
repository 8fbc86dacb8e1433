//! The shape of the code, checked: no two modules of a crate import each other, directly or
//! through others, so each module can be read (and changed) knowing only what is below it.
//!
//! A module's imports are the module paths it names: `crate::a::b`, `super::x`, and the paths
//! of its own child modules (`use users::X`, `users::list_users` in a router). `mod` lines
//! declare, they do not import. A path is taken to the longest module it names that exists.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test over the source tree

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src`, keyed by its module path (`""` for the crate root).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The source without comments, string literals and `#[cfg(test)]` modules (tests may reach
/// anywhere).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut in_str = false;
        let mut escaped = false;
        for c in line.chars() {
            if in_str {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_str = false;
                }
                continue;
            }
            if c == '"' {
                in_str = true;
                continue;
            }
            out.push(c);
        }
        out.push('\n');
    }
    out
}

/// Expands the paths a `use` tree names: `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::").trim();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&base, &inner[start..], out);
    } else if !tree.is_empty() {
        let tree = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(join(prefix, tree));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

/// The paths a module's code names.
fn paths_named(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = rest.find(';') {
            expand("", &rest[..end], &mut out);
        }
    }
    // Paths written inline: `crate::a::b::f()`, `super::x`, `child::f`.
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_alphanumeric() || bytes[i] == '_' || bytes[i] == ':')
            {
                i += 1;
            }
            let prev = start.checked_sub(1).map(|p| bytes[p]);
            let word: String = bytes[start..i].iter().collect();
            // `a::{...}` is a use group: its paths come from the `use` pass above.
            if word.contains("::")
                && !word.ends_with(':')
                && prev.is_none_or(|p| p != ':' && p != '.')
            {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The module a path names, seen from `from`; `None` for other crates and for `from` itself.
fn resolve(from: &str, path: &str, known: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    match segs.first().copied() {
        Some("crate") => {
            base.clear();
            segs.remove(0);
        }
        Some("super") => {
            while segs.first() == Some(&"super") {
                base.pop();
                segs.remove(0);
            }
        }
        Some("self") => {
            segs.remove(0);
        }
        Some(first) => {
            // A child module of `from`, named without `self::`.
            let child = join(&base.join("::"), first);
            if !known.contains_key(&child) {
                return None;
            }
        }
        None => return None,
    }
    let mut best = base.join("::");
    let mut cur = base.clone();
    for s in segs {
        cur.push(s);
        let p = cur.join("::");
        if known.contains_key(&p) {
            best = p;
        } else {
            break;
        }
    }
    (best != from).then_some(best)
}

/// A cycle in the graph, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = path.iter().position(|p| p == m).unwrap_or(0);
                    let mut cycle = path[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// The groups of modules that import each other (strongly connected components of more than
/// one module), each sorted.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for m in graph.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|k| (k, reach(k))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (n, r) in &reached {
        if !r.contains(*n) || out.iter().any(|c| c.contains(n)) {
            continue;
        }
        let group: Vec<String> = reached
            .iter()
            .filter(|(m, rm)| r.contains(**m) && rm.contains(*n))
            .map(|(m, _)| (*m).clone())
            .collect();
        out.push(group);
    }
    out
}

fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let known = modules(src);
    let mut graph = BTreeMap::new();
    for (module, file) in &known {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let edges: BTreeSet<String> = paths_named(&code)
            .iter()
            .filter_map(|p| resolve(module, p, &known))
            .collect();
        graph.insert(module.clone(), edges);
    }
    graph
}

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn no_crate_has_an_import_circle() {
    let mut found = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(crates_dir()).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = import_graph(&src);
        checked += graph.len();
        let name = src
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for group in circles(&graph) {
            let shown: Vec<&str> = group
                .iter()
                .map(|m| if m.is_empty() { "(root)" } else { m.as_str() })
                .collect();
            let example = find_cycle(
                &graph
                    .iter()
                    .filter(|(k, _)| group.contains(k))
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.iter().filter(|m| group.contains(m)).cloned().collect(),
                        )
                    })
                    .collect(),
            )
            .unwrap_or_default();
            found.push(format!(
                "{name}: {{{}}}, for example {}",
                shown.join(", "),
                example.join(" -> ")
            ));
        }
    }
    assert!(
        checked > 50,
        "only {checked} modules found: is the source tree where it should be?"
    );
    assert!(
        found.is_empty(),
        "modules that import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_circle_check_sees_a_circle() {
    let dir = std::env::temp_dir().join(format!(
        "muster-arch-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let src = dir.as_path();
    std::fs::create_dir_all(src.join("users")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod users;\npub mod orgs;\n").unwrap();
    std::fs::write(src.join("users/mod.rs"), "pub mod lifecycle;\n").unwrap();
    std::fs::write(
        src.join("users/lifecycle.rs"),
        "use crate::{orgs::Org, orgs};\n// crate::nothing\n",
    )
    .unwrap();
    std::fs::write(
        src.join("orgs.rs"),
        "fn f() { super::users::lifecycle::g(); }\n",
    )
    .unwrap();
    let graph = import_graph(src);
    assert_eq!(
        graph["users::lifecycle"],
        BTreeSet::from(["orgs".to_string()])
    );
    assert_eq!(
        circles(&graph),
        [vec!["orgs".to_string(), "users::lifecycle".to_string()]]
    );
    let cycle = find_cycle(&graph).expect("the circle is found");
    assert!(cycle.contains(&"orgs".to_string()) && cycle.contains(&"users::lifecycle".to_string()));
    std::fs::write(
        src.join("orgs.rs"),
        "fn f() { let s = \"crate::users\"; }\n",
    )
    .unwrap();
    assert_eq!(find_cycle(&import_graph(src)), None);
    std::fs::remove_dir_all(src).unwrap();
}
