//! The files in `deploy/` are checked by the tools that will read them, and their privileges are
//! tried for real:
//! - the systemd units pass `systemd-analyze verify` (with ExecStart pointing at the built
//!   binary) without a warning, and `systemd-analyze security` rates them at most 3.0;
//! - each unit's capabilities are exactly the named three, and they are enough: the command run
//!   under them (as a non-root user with those ambient capabilities and no_new_privs, which is
//!   what `DynamicUser=yes` + `AmbientCapabilities=` give) sees and raises a listener of another
//!   user and `--all-namespaces` enters the host's namespace; without CAP_SYS_PTRACE or
//!   CAP_DAC_READ_SEARCH it cannot, without CAP_SYS_ADMIN `--all-namespaces` is refused (needs
//!   root);
//! - the Kubernetes manifests hold what a node agent must (parsed with python3-yaml);
//! - the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`);
//! - the Containerfile is `FROM scratch` with the binary alone (the image itself is built,
//!   saved and its binary run by `.ci/image`).
//!
//! A missing tool skips a test with a message outside CI and fails it with `CI=true`.

#![cfg(all(target_os = "linux", feature = "cli"))]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::process::{have, listening, python_listen_argv, Killed};
use common::{in_netns, require_root, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_maxlisten");
/// The exporter's default port (README, "Running it on a fleet").
const PORT: u16 = 19974;
const UNITS: [&str; 2] = [
    "maxlisten-exporter.service",
    "maxlisten-raise-watch.service",
];
/// The capabilities every agent file names, in capabilities(7) spelling.
const CAPS: [&str; 3] = ["CAP_DAC_READ_SEARCH", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"];

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// The `[Service]`-style settings of a unit file: key → every value it is given, in order.
fn unit_settings(text: &str) -> HashMap<String, Vec<String>> {
    let mut settings: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let (key, value) = line.split_once('=').expect("a unit line is KEY=VALUE");
        settings
            .entry(key.to_string())
            .or_default()
            .push(value.to_string());
    }
    settings
}

fn one<'a>(settings: &'a HashMap<String, Vec<String>>, key: &str, unit: &str) -> &'a str {
    match settings.get(key).map(Vec::as_slice) {
        Some([value]) => value,
        other => panic!("{unit}: {key} should be set once, is {other:?}"),
    }
}

#[test]
fn systemd_units_pass_verify_and_security() {
    if !have(
        "systemd_units_pass_verify_and_security",
        "systemd-analyze",
        "systemd",
    ) {
        return;
    }
    let dir = temp_dir("deploy-units");
    for unit in UNITS {
        let text = std::fs::read_to_string(deploy(&format!("systemd/{unit}"))).unwrap();
        // verify insists that ExecStart names an executable: point it at the built binary.
        assert!(
            text.contains("ExecStart=/usr/local/bin/maxlisten "),
            "{unit}"
        );
        let copy = dir.join(unit);
        std::fs::write(&copy, text.replace("/usr/local/bin/maxlisten", BIN)).unwrap();

        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // verify exits 0 on an unknown key or group (a warning): any output is a failure.
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify {unit}: {}\n{stderr}",
            out.status
        );

        // The exposure score systemd computes (0 = locked down, 10 = nothing); 3.0 leaves no
        // room for a dropped Protect*= line.
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=30"])
            .arg(&copy)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let score = stdout
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no exposure level for {unit}: {stdout}"));
        eprintln!("{score}");
        assert!(out.status.success(), "{unit} is too exposed: {score}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn systemd_units_hold_only_the_named_capabilities() {
    let expected: BTreeSet<&str> = CAPS.into_iter().collect();
    for unit in UNITS {
        let text = std::fs::read_to_string(deploy(&format!("systemd/{unit}"))).unwrap();
        let s = unit_settings(&text);
        for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
            let caps: BTreeSet<&str> = one(&s, key, unit).split_whitespace().collect();
            assert_eq!(caps, expected, "{unit}: {key}");
        }
        for (key, value) in [
            ("DynamicUser", "yes"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("ProtectKernelTunables", "yes"),
            ("ProtectControlGroups", "yes"),
            ("RestrictNamespaces", "net"),
            // The survey is /proc: a hidden process tree would blind it.
            ("ProtectProc", "default"),
            ("ProcSubset", "all"),
        ] {
            assert_eq!(one(&s, key, unit), value, "{unit}: {key}");
        }
        // Capabilities inside a private user namespace would not reach the host's processes.
        assert!(!s.contains_key("PrivateUsers"), "{unit}: PrivateUsers");
        let exec = one(&s, "ExecStart", unit);
        assert!(exec.contains("--all-namespaces"), "{unit}: {exec}");
        // Each capability is explained next to where it is granted.
        for cap in CAPS {
            assert!(
                text.lines().any(|l| l.starts_with('#') && l.contains(cap)),
                "{unit} does not say why it holds {cap}"
            );
        }
    }
    let exporter = unit_settings(
        &std::fs::read_to_string(deploy("systemd/maxlisten-exporter.service")).unwrap(),
    );
    let exec = one(&exporter, "ExecStart", "exporter");
    assert!(
        exec.contains(" exporter ") && exec.contains(&format!(":{PORT}")),
        "{exec}"
    );
    let watch = unit_settings(
        &std::fs::read_to_string(deploy("systemd/maxlisten-raise-watch.service")).unwrap(),
    );
    let exec = one(&watch, "ExecStart", "raise-watch");
    assert!(exec.contains(" raise --watch "), "{exec}");
    // SIGHUP runs a pass at once: `systemctl reload` sends it.
    assert_eq!(
        one(&watch, "ExecReload", "raise-watch"),
        "/bin/kill -HUP $MAINPID"
    );
    // pidfd_getfd is in systemd's @debug group, outside @system-service: it must be named.
    assert!(watch["SystemCallFilter"]
        .iter()
        .any(|f| f.split_whitespace().any(|c| c == "pidfd_getfd")));
}

/// Runs `maxlisten ARGS` as uid 65534 holding exactly `caps` (capabilities(7) names) as ambient
/// capabilities, with no_new_privs: what the units' DynamicUser=yes, AmbientCapabilities=,
/// CapabilityBoundingSet= and NoNewPrivileges=yes give the process.
fn as_unit(caps: &[&str], args: &[&str]) -> std::process::Output {
    unit_command(caps, args).output().unwrap()
}

fn unit_command(caps: &[&str], args: &[&str]) -> Command {
    let list: String = caps
        .iter()
        .map(|c| format!(",+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps=-all{list}"))
        .arg(format!("--ambient-caps=-all{list}"))
        .arg(format!("--bounding-set=-all{list}"))
        .arg("--no-new-privs")
        .arg(BIN)
        .args(args);
    command
}

/// One scrape of an exporter on 127.0.0.1:`port`, waiting for it to listen.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the exporter does not listen: {e}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    };
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// The owners `survey --json` found for the listener on `port`.
fn owners(json: &[u8], port: u16) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(json).expect("survey --json");
    let local = format!("127.0.0.1:{port}");
    let listener = v["listeners"]
        .as_array()
        .unwrap_or_else(|| panic!("no listeners in {v}"))
        .iter()
        .find(|l| l["local"] == local.as_str())
        .unwrap_or_else(|| panic!("survey does not show {local}: {v}"));
    listener["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["command"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn systemd_capabilities_are_enough_and_each_is_needed() {
    if !require_root("systemd_capabilities_are_enough_and_each_is_needed")
        || !have("systemd_capabilities", "setpriv", "util-linux")
        || !have("systemd_capabilities", "python3", "python3")
    {
        return;
    }
    let watch = unit_settings(
        &std::fs::read_to_string(deploy("systemd/maxlisten-raise-watch.service")).unwrap(),
    );
    let granted: Vec<&str> = one(&watch, "AmbientCapabilities", "raise-watch")
        .split_whitespace()
        .collect();
    in_netns(2000, || {
        // A server of another user (uid 4321), as on a shared host.
        let (_server, port) = listening(
            Command::new("setpriv")
                .args(["--reuid=4321", "--regid=4321", "--clear-groups"])
                .args(python_listen_argv(8)),
        );

        // With the unit's capabilities the owner is found...
        let out = as_unit(&granted, &["survey", "--json"]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(owners(&out.stdout, port), ["python3"], "with {granted:?}");
        // ...and without either of the /proc ones it is not.
        for missing in ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"] {
            let fewer: Vec<&str> = granted.iter().copied().filter(|c| *c != missing).collect();
            let out = as_unit(&fewer, &["survey", "--json"]);
            assert!(
                owners(&out.stdout, port).is_empty(),
                "the owner was found without {missing}: CapabilityBoundingSet grants more than needed"
            );
        }

        // --all-namespaces (what both units run) enters the host's namespace from this test's:
        // with the unit's capabilities it does, without CAP_SYS_ADMIN it is refused, naming it.
        let out = as_unit(&granted, &["survey", "--all-namespaces", "--json"]);
        assert!(out.status.success(), "{out:?}");
        let fewer: Vec<&str> = granted
            .iter()
            .copied()
            .filter(|c| *c != "CAP_SYS_ADMIN")
            .collect();
        let out = as_unit(&fewer, &["survey", "--all-namespaces", "--json"]);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("CAP_SYS_ADMIN"),
            "--all-namespaces without CAP_SYS_ADMIN: {out:?}"
        );

        // The exporter, as its unit runs it, labels the other user's listener with its owner.
        let exporter_unit = unit_settings(
            &std::fs::read_to_string(deploy("systemd/maxlisten-exporter.service")).unwrap(),
        );
        let exporter_caps: Vec<&str> = one(&exporter_unit, "AmbientCapabilities", "exporter")
            .split_whitespace()
            .collect();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let metrics_port = free.local_addr().unwrap().port();
        drop(free);
        let exporter = unit_command(
            &exporter_caps,
            &["exporter", &format!("--listen=127.0.0.1:{metrics_port}")],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let _exporter = Killed(exporter);
        let text = scrape(metrics_port);
        let sample = format!("proto=\"tcp\",local=\"127.0.0.1:{port}\",command=\"python3\",");
        assert!(
            text.lines()
                .any(|l| l.starts_with("maxlisten_listener_backlog{")
                    && l.contains(&sample)
                    && l.ends_with("} 8")),
            "the exporter under the unit's capabilities does not show python3's listener: {text}"
        );
        // It reads every process root reads (on some machines not even root reads them all:
        // a PID 1 whose capabilities exceed root's refuses its descriptors).
        let unreadable = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("maxlisten_unreadable_processes "))
                .map(str::to_owned)
        };
        let as_root = Command::new(BIN)
            .args(["survey", "--prometheus"])
            .output()
            .unwrap();
        assert_eq!(
            unreadable(&text),
            unreadable(&String::from_utf8_lossy(&as_root.stdout)),
            "{text}"
        );

        // raise (what --watch runs every period) without CAP_SYS_PTRACE: refused, unchanged.
        let fewer: Vec<&str> = granted
            .iter()
            .copied()
            .filter(|c| *c != "CAP_SYS_PTRACE")
            .collect();
        let out = as_unit(&fewer, &["raise", "--port", &port.to_string()]);
        assert!(
            !out.status.success(),
            "raised without CAP_SYS_PTRACE: {out:?}"
        );
        assert_eq!(common::ss_send_q(port), 8);
        // With the unit's capabilities: raised to the namespace's limit in the other user's
        // process.
        let out = as_unit(&granted, &["raise", "--port", &port.to_string()]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(common::ss_send_q(port), 2000);
    });
}

/// A python3 that has the yaml module (python3-yaml installs it for /usr/bin/python3, which may
/// not be the first python3 on PATH); otherwise skips (outside CI) or fails (CI=true).
fn yaml_python(test: &str) -> Option<&'static str> {
    let found = ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import yaml"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test} needs python3 with yaml (Debian package python3-yaml); CI=true forbids skipping it"
        );
        eprintln!("SKIPPED {test}: needs python3-yaml");
    }
    found
}

/// Runs the manifest check on `files`: its output, and whether it passed.
fn k8s_check(python: &str, files: &[PathBuf]) -> (String, bool) {
    let out = Command::new(python)
        .arg("-c")
        .arg(K8S_CHECK)
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.success())
}

/// Checks the DaemonSet, its opt-in watch patch and the PodMonitor. Every `check` failure
/// raises with the file and what is wrong.
const K8S_CHECK: &str = r#"
import sys, yaml
ds_file, patch_file, pm_file, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
CAPS = {"SYS_PTRACE", "SYS_ADMIN", "DAC_READ_SEARCH"}

def check(ok, what):
    if not ok:
        raise SystemExit(f"{what}")

docs = [d for d in yaml.safe_load_all(open(ds_file)) if d]
kinds = {d["kind"]: d for d in docs}
check(set(kinds) == {"Namespace", "ServiceAccount", "DaemonSet"}, f"{ds_file}: kinds {sorted(kinds)}")
ns = kinds["Namespace"]["metadata"]
# hostPID and these capabilities are outside Pod Security "baseline".
check(ns["labels"].get("pod-security.kubernetes.io/enforce") == "privileged", "namespace Pod Security level")
check(kinds["ServiceAccount"].get("automountServiceAccountToken") is False, "service account token mounted")

ds = kinds["DaemonSet"]
check(ds["apiVersion"] == "apps/v1", "DaemonSet apiVersion")
check(ds["metadata"]["namespace"] == ns["name"], "DaemonSet namespace")
tmpl = ds["spec"]["template"]
pod = tmpl["spec"]
check(ds["spec"]["selector"]["matchLabels"].items() <= tmpl["metadata"]["labels"].items(), "selector does not match the pod labels")
check(pod.get("hostPID") is True, "hostPID")
check(not pod.get("hostNetwork", False), "hostNetwork must stay off")
check(not pod.get("hostIPC", False), "hostIPC")
check(pod.get("automountServiceAccountToken") is False, "pod mounts a token")
check(pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", "seccomp")
# The runtimes' default AppArmor profile allows ptrace only among its own processes: the node's
# would be unreadable. Set for the pod, so that the watch patch's container has it too.
check(pod["securityContext"].get("appArmorProfile", {}).get("type") == "Unconfined", "AppArmor profile")
check(any(t.get("operator") == "Exists" for t in pod.get("tolerations", [])), "runs on every node")

def check_container(c, where):
    sc = c["securityContext"]
    check(sc["capabilities"]["drop"] == ["ALL"], f"{where}: drop ALL")
    check(set(sc["capabilities"]["add"]) == CAPS, f"{where}: capabilities {sc['capabilities']['add']}")
    check(sc["readOnlyRootFilesystem"] is True, f"{where}: readOnlyRootFilesystem")
    check(sc["allowPrivilegeEscalation"] is False, f"{where}: allowPrivilegeEscalation")
    check(not sc.get("privileged", False), f"{where}: privileged")
    for kind in ("requests", "limits"):
        check({"cpu", "memory"} <= set(c["resources"][kind]), f"{where}: resources.{kind}")
    for m in c.get("volumeMounts", []):
        check(m.get("readOnly") is True, f"{where}: {m['mountPath']} is writable")

(exporter,) = pod["containers"]
check(exporter["name"] == "exporter", "container name")
check_container(exporter, "exporter")
args = exporter["args"]
check(args[0] == "exporter" and "--all-namespaces" in args and f"--listen=0.0.0.0:{port}" in args, f"exporter args {args}")
(metrics,) = [p for p in exporter["ports"] if p["name"] == "metrics"]
check(metrics["containerPort"] == port and metrics.get("protocol", "TCP") == "TCP", "metrics port")
probe = exporter["readinessProbe"]["httpGet"]
check(probe["path"] == "/metrics" and probe["port"] in ("metrics", port), f"readiness probe {probe}")
ann = tmpl["metadata"]["annotations"]
check(ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == str(port) and ann["prometheus.io/path"] == "/metrics", f"annotations {ann}")

# The opt-in watch mode: a strategic-merge patch adding a second container.
patch = yaml.safe_load(open(patch_file))
(watch,) = patch["spec"]["template"]["spec"]["containers"]
check(watch["name"] == "raise-watch" and watch["image"] == exporter["image"], "watch container")
check_container(watch, "raise-watch")
wargs = watch["args"]
check(wargs[0] == "raise" and any(a.startswith("--watch") for a in wargs) and "--all-namespaces" in wargs, f"watch args {wargs}")
check("ports" not in watch, "the watch container serves nothing")

pm = yaml.safe_load(open(pm_file))
check(pm["apiVersion"] == "monitoring.coreos.com/v1" and pm["kind"] == "PodMonitor", "PodMonitor kind")
check(pm["metadata"]["namespace"] == ns["name"], "PodMonitor namespace")
check(pm["spec"]["selector"]["matchLabels"].items() <= tmpl["metadata"]["labels"].items(), "PodMonitor selects no agent pod")
(ep,) = pm["spec"]["podMetricsEndpoints"]
check(ep["port"] == "metrics" and ep["path"] == "/metrics", f"PodMonitor endpoint {ep}")
print(f"daemonset.yaml, raise-watch.patch.yaml, podmonitor.yaml: agent on port {port}, capabilities {sorted(CAPS)}, image {exporter['image']}")
print("ARGS " + " ".join(args))
print("WATCHARGS " + " ".join(wargs))
"#;

fn k8s_files() -> Vec<PathBuf> {
    vec![
        deploy("kubernetes/daemonset.yaml"),
        deploy("kubernetes/raise-watch.patch.yaml"),
        deploy("kubernetes/podmonitor.yaml"),
        PathBuf::from(PORT.to_string()),
    ]
}

#[test]
fn kubernetes_manifests_hold_what_a_node_agent_needs() {
    let Some(python) = yaml_python("kubernetes_manifests") else {
        return;
    };
    let (text, ok) = k8s_check(python, &k8s_files());
    eprint!("{text}");
    assert!(ok, "{text}");
}

/// The check above must be able to fail: a manifest with hostNetwork on, and one with an extra
/// capability, are refused.
#[test]
fn kubernetes_check_refuses_a_wider_manifest() {
    let Some(python) = yaml_python("kubernetes_check_refuses") else {
        return;
    };
    let dir = temp_dir("deploy-k8s");
    let text = std::fs::read_to_string(deploy("kubernetes/daemonset.yaml")).unwrap();
    for (name, bad, says) in [
        (
            "hostnetwork",
            text.replace("hostNetwork: false", "hostNetwork: true"),
            "hostNetwork",
        ),
        (
            "net_admin",
            text.replace(
                "                - DAC_READ_SEARCH",
                "                - DAC_READ_SEARCH\n                - NET_ADMIN",
            ),
            "capabilities",
        ),
        (
            "writable",
            text.replace(
                "readOnlyRootFilesystem: true",
                "readOnlyRootFilesystem: false",
            ),
            "readOnlyRootFilesystem",
        ),
    ] {
        assert_ne!(bad, text, "{name}: the mutation did not apply");
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, bad).unwrap();
        let mut files = k8s_files();
        files[0] = file;
        let (out, ok) = k8s_check(python, &files);
        assert!(!ok && out.contains(says), "{name} passed the check: {out}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    if !have("alert_rules", "promtool", "prometheus") {
        return;
    }
    let dir = deploy("prometheus");
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts_test.yml"][..],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    for (alert, family) in [
        (
            "MaxlistenBacklogBelowLimit",
            "maxlisten_listener_below_limit",
        ),
        ("MaxlistenListenDrops", "maxlisten_listener_drops_total"),
    ] {
        let at = rules
            .find(&format!("alert: {alert}\n"))
            .unwrap_or_else(|| panic!("no {alert}"));
        let rule = &rules[at..];
        let rule = &rule[..rule[1..].find("- alert:").map_or(rule.len(), |e| e + 1)];
        assert!(rule.contains(family), "{alert} does not use {family}");
        assert!(rule.contains("summary:") && rule.contains("description:"));
        assert!(rule.contains("maxlisten raise") && rule.contains("Running it on a fleet"));
    }
}

#[test]
fn containerfile_is_scratch_with_the_binary_alone() {
    let text = std::fs::read_to_string(deploy("Containerfile")).unwrap();
    let steps: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(steps.first(), Some(&"FROM scratch"), "{steps:?}");
    let from = steps.iter().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(from, 1, "one stage only: {steps:?}");
    let copies: Vec<&&str> = steps
        .iter()
        .filter(|l| l.starts_with("COPY ") || l.starts_with("ADD "))
        .collect();
    assert_eq!(copies, [&"COPY maxlisten /maxlisten"]);
    assert!(
        !steps.iter().any(|l| l.starts_with("RUN ")),
        "no RUN in scratch"
    );
    assert!(steps.contains(&"ENTRYPOINT [\"/maxlisten\"]"));
    assert!(steps.contains(&format!("EXPOSE {PORT}").as_str()));
}
/// `maxlisten ARGS --help` succeeds: clap accepts every flag of ARGS.
fn accepted(args: &[String]) -> Result<(), String> {
    let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "maxlisten {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Every command line in deploy/ (the units' ExecStart, the DaemonSet's and the patch's args,
/// the image's CMD) is one the built command accepts.
#[test]
fn deploy_command_lines_are_accepted_by_the_command() {
    let mut lines: Vec<Vec<String>> = Vec::new();
    for unit in UNITS {
        let s =
            unit_settings(&std::fs::read_to_string(deploy(&format!("systemd/{unit}"))).unwrap());
        let exec = one(&s, "ExecStart", unit);
        lines.push(exec.split_whitespace().skip(1).map(String::from).collect());
    }
    let cmd = std::fs::read_to_string(deploy("Containerfile")).unwrap();
    let cmd = cmd
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
    lines.push(cmd);
    if let Some(python) = yaml_python("deploy_command_lines") {
        let (text, ok) = k8s_check(python, &k8s_files());
        assert!(ok, "{text}");
        for prefix in ["ARGS ", "WATCHARGS "] {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix}in {text}"));
            lines.push(line.split_whitespace().map(String::from).collect());
        }
    }
    let refused: Vec<String> = lines.iter().filter_map(|l| accepted(l).err()).collect();
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}
