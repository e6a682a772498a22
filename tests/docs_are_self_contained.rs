//! The repository explains itself: no file refers to documents that live
//! outside it (a sibling `shared` folder of design notes, a development
//! machine's absolute paths), and every relative link in the Markdown docs
//! leads to a file that exists.
//!
//! A user of the project has only the repository. The facts those outside
//! notes held — thresholds, sources, KPI formulas — are in `docs/RULES.md`
//! and the other files under `docs/`.
//!
//! Files are those git knows of (tracked, plus untracked ones not ignored,
//! so a new file is checked before it is committed); without git, the tree
//! is walked, skipping `target/` and `.git/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the workspace's root package).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What no file may mention. Assembled at run time so that this file does
/// not contain them itself.
fn forbidden() -> Vec<String> {
    vec![
        ["..", "/shared"].concat(),
        ["DOMAIN", ".md"].concat(),
        ["DESIGN", ".md"].concat(),
        ["STYLE", ".md"].concat(),
        ["/work", "/"].concat(),
    ]
}

/// Every file of the repository, relative to the root, sorted.
fn repository_files() -> Vec<PathBuf> {
    let git = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output();
    let mut files: Vec<PathBuf> = match git {
        Ok(out) if out.status.success() => out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .collect(),
        _ => {
            let mut found = Vec::new();
            walk(&root(), Path::new(""), &mut found);
            found
        }
    };
    files.sort();
    files.dedup();
    files
}

/// Collects the files under `root/rel`, skipping build output and git.
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if rel.as_os_str().is_empty() && (name == "target" || name == ".git") {
            continue;
        }
        let path = rel.join(&name);
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(root, &path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// The text of a repository file; `None` for binary files and files
/// listed but gone (deleted in the working tree).
fn text(rel: &Path) -> Option<String> {
    let bytes = std::fs::read(root().join(rel)).ok()?;
    String::from_utf8(bytes).ok()
}

#[test]
fn no_repository_file_refers_to_documents_outside_the_repository() {
    let forbidden = forbidden();
    let files = repository_files();
    assert!(
        files.len() > 10,
        "found only {} files under {}: is this the repository?",
        files.len(),
        root().display()
    );
    let mut problems = Vec::new();
    for rel in &files {
        let Some(text) = text(rel) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            for f in &forbidden {
                if line.contains(f.as_str()) {
                    problems.push(format!(
                        "{}:{}: mentions `{f}`, which is not in the repository; \
                         cite the doc under docs/ (e.g. docs/RULES.md) or state the fact",
                        rel.display(),
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The Markdown files whose links are checked: `docs/*.md` and
/// `README.md`.
fn checked_markdown(files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| {
            let top_doc =
                p.parent() == Some(Path::new("docs")) && p.extension().is_some_and(|e| e == "md");
            top_doc || p.as_path() == Path::new("README.md")
        })
        .cloned()
        .collect()
}

/// The link targets on one line of Markdown: inline links and images
/// `[text](target "title")`, and reference definitions `[id]: target`.
/// Code spans are skipped.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Drop `code spans`: every other backtick-separated piece.
    let prose: String = line
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(" ");
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or("");
        let target = target.trim_start_matches('<').trim_end_matches('>');
        out.push(target.to_owned());
        rest = &after[end..];
    }
    let trimmed = prose.trim_start();
    if trimmed.starts_with('[') {
        if let Some(at) = trimmed.find("]:") {
            if let Some(target) = trimmed[at + 2..].split_whitespace().next() {
                out.push(target.to_owned());
            }
        }
    }
    out
}

/// True for targets that are not files of the repository: web addresses,
/// mail, anchors within the same page.
fn external_or_anchor(target: &str) -> bool {
    target.is_empty()
        || target.starts_with('#')
        || target.contains("://")
        || target.starts_with("mailto:")
}

#[test]
fn every_relative_link_in_the_markdown_docs_leads_to_an_existing_file() {
    let files = repository_files();
    let docs = checked_markdown(&files);
    assert!(
        docs.iter().any(|p| p == Path::new("README.md")),
        "README.md is not among the repository files"
    );
    let mut problems = Vec::new();
    for rel in &docs {
        let Some(text) = text(rel) else {
            continue;
        };
        let dir = rel.parent().unwrap_or(Path::new(""));
        let mut fenced = false;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if fenced {
                continue;
            }
            for target in link_targets(line) {
                if external_or_anchor(&target) {
                    continue;
                }
                let file = target.split('#').next().unwrap_or("");
                let path = match file.strip_prefix('/') {
                    Some(from_root) => root().join(from_root),
                    None => root().join(dir).join(file),
                };
                if !path.exists() {
                    problems.push(format!(
                        "{}:{}: link to `{target}`, but {} does not exist",
                        rel.display(),
                        i + 1,
                        path.strip_prefix(root()).unwrap_or(&path).display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn link_targets_are_found_in_links_images_and_definitions_but_not_in_code() {
    let cases: [(&str, &[&str]); 6] = [
        ("see [the rules](docs/RULES.md).", &["docs/RULES.md"]),
        (
            "[a](x.md#part \"title\") and ![b](img/y.png)",
            &["x.md#part", "img/y.png"],
        ),
        ("[ref]: ../zone/README.md", &["../zone/README.md"]),
        ("`[not](a-link.md)` but [this](one.md)", &["one.md"]),
        ("[web](https://example.org/x)", &["https://example.org/x"]),
        ("no links here (really)", &[]),
    ];
    for (line, want) in cases {
        assert_eq!(link_targets(line), want, "{line}");
    }
    assert!(external_or_anchor("https://example.org"));
    assert!(external_or_anchor("#typical-reporting-rates"));
    assert!(!external_or_anchor(
        "../docs/RULES.md#typical-reporting-rates"
    ));
}
