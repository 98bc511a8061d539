//! The dependency rules of ARCHITECTURE.md, checked on `cargo metadata`: broker and recordings
//! depend on no crate of ours; nothing but the binary depends on web or gateway. And the broker's
//! layout: its modules live in subdomain folders, with only the cross-cutting ones at the root.

use std::collections::BTreeMap;

/// Workspace crate -> the workspace crates it depends on (normal and build dependencies; a
/// crate's dev-dependency on itself, to enable test features, is not a dependency).
fn internal_deps(meta: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    let packages = meta["packages"].as_array().unwrap();
    let ours: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_string();
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev") || d["name"] != p["name"])
                .filter(|d| {
                    d["kind"].as_str() != Some("dev")
                        || d["name"] == "gatehouse-web"
                        || d["name"] == "gatehouse-gateway"
                })
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|d| ours.contains(&d.as_str()))
                .collect();
            (name, deps)
        })
        .collect()
}

/// Every broken rule, as a sentence.
fn violations(deps: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (krate, uses) in deps {
        for used in uses {
            let leaf = matches!(krate.as_str(), "gatehouse-recordings" | "gatehouse-scim");
            if leaf && used != krate {
                out.push(format!(
                    "{krate} must depend on no crate of ours, but depends on {used}"
                ));
            }
            // The broker uses only the pure SCIM library (no IO in it).
            if krate == "gatehouse-broker" && used != krate && used != "gatehouse-scim" {
                out.push(format!(
                    "{krate} must depend on no crate of ours, but depends on {used}"
                ));
            }
            let edge = matches!(used.as_str(), "gatehouse-web" | "gatehouse-gateway");
            if edge && krate != "gatehouse" {
                out.push(format!(
                    "only the gatehouse binary may depend on {used}, but {krate} does"
                ));
            }
        }
    }
    out
}

#[test]
fn crates_depend_only_as_architecture_md_allows() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let deps = internal_deps(&meta);
    for krate in [
        "gatehouse",
        "gatehouse-broker",
        "gatehouse-gateway",
        "gatehouse-web",
        "gatehouse-recordings",
        "gatehouse-scim",
    ] {
        assert!(
            deps.contains_key(krate),
            "{krate} missing from the workspace: {deps:?}"
        );
    }
    assert_eq!(violations(&deps), Vec::<String>::new());
}

#[test]
fn the_rule_check_catches_each_kind_of_violation() {
    let meta = serde_json::json!({ "packages": [
        { "name": "gatehouse-broker", "dependencies": [
            { "name": "gatehouse-recordings", "kind": null },
            { "name": "gatehouse-broker", "kind": "dev" } ] },
        { "name": "gatehouse-recordings", "dependencies": [] },
        { "name": "gatehouse-web", "dependencies": [ { "name": "gatehouse-gateway", "kind": null } ] },
        { "name": "gatehouse-gateway", "dependencies": [ { "name": "gatehouse-web", "kind": "dev" } ] },
        { "name": "gatehouse", "dependencies": [ { "name": "gatehouse-web", "kind": null } ] },
    ]});
    let v = violations(&internal_deps(&meta));
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v[0].contains("gatehouse-broker must depend on no crate of ours"));
    assert!(v.iter().any(|s| s.contains("but gatehouse-web does")));
    assert!(v.iter().any(|s| s.contains("but gatehouse-gateway does")));
}

/// Docs never describe what the code does not do: the app gateway's page says what is not built
/// yet, and while app sessions are not recorded nothing claims they are.
#[test]
fn app_gateway_docs_say_what_is_not_built_yet() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/app-gateway.md")).unwrap();
    assert!(
        doc.contains("## Not yet"),
        "docs/app-gateway.md lists what is missing"
    );
    let recorded = root.join("gateway/src/http/record.rs").exists();
    if !recorded {
        for file in ["README.md", "ARCHITECTURE.md", "docs/app-gateway.md"] {
            let text = std::fs::read_to_string(root.join(file))
                .unwrap()
                .to_lowercase();
            assert!(
                !text.contains("app sessions are recorded"),
                "{file} claims app sessions are recorded"
            );
        }
    }
}

/// What may sit at the top of `broker/src/`: the cross-cutting modules (files)…
const BROKER_ROOT_MODULES: &[&str] = &[
    "lib",
    "actor",
    "bootstrap",
    "clock",
    "error",
    "events",
    "ids",
    "keys",
    "sealing",
    "secrets",
    "testkit",
];
/// …and the subdomain folders, each with a `mod.rs` of its own.
const BROKER_SUBDOMAINS: &[&str] = &["access", "governance", "identity", "ledger", "provisioning"];

/// Every top-level entry of `broker/src/` (`name.rs` as a file, `name/` as a folder) that is
/// neither a root module nor a subdomain folder, as a sentence saying where it belongs.
fn misplaced_broker_modules(files: &[String], folders: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let subdomains = BROKER_SUBDOMAINS.join("/, ") + "/";
    for file in files {
        if !BROKER_ROOT_MODULES.contains(&file.as_str()) {
            out.push(format!(
                "broker/src/{file}.rs is a flat module: move it into the subdomain folder it \
                 belongs to ({subdomains}) and declare it in that folder's mod.rs, or, if it is \
                 truly cross-cutting, add it to BROKER_ROOT_MODULES and to ARCHITECTURE.md"
            ));
        }
    }
    for folder in folders {
        if !BROKER_SUBDOMAINS.contains(&folder.as_str()) {
            out.push(format!(
                "broker/src/{folder}/ is not a subdomain: move it into the subdomain folder it \
                 belongs to ({subdomains}), or, if it is a new subdomain, add it to \
                 BROKER_SUBDOMAINS and to ARCHITECTURE.md"
            ));
        }
    }
    out
}

#[test]
fn broker_modules_are_grouped_by_subdomain() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("broker/src");
    let (mut files, mut folders) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            folders.push(name);
        } else if let Some(module) = name.strip_suffix(".rs") {
            files.push(module.to_string());
        }
    }
    files.sort();
    folders.sort();
    assert_eq!(
        misplaced_broker_modules(&files, &folders),
        Vec::<String>::new()
    );
    for subdomain in BROKER_SUBDOMAINS {
        assert!(
            folders.iter().any(|f| f == subdomain),
            "broker/src/{subdomain}/ is missing"
        );
        assert!(
            src.join(subdomain).join("mod.rs").is_file(),
            "broker/src/{subdomain}/mod.rs is missing"
        );
    }
}

#[test]
fn the_layout_check_names_where_a_flat_module_goes() {
    let files = ["lib", "clock", "widgets"].map(String::from);
    let folders = ["identity", "things"].map(String::from);
    let v = misplaced_broker_modules(&files, &folders);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].starts_with("broker/src/widgets.rs is a flat module: move it into"));
    assert!(v[0].contains("identity/"));
    assert!(v[1].starts_with("broker/src/things/ is not a subdomain"));
}
