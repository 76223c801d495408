//! The Rust API, as a networked-software project would use it from `cargo test`: a
//! client and a server on two hosts behind a router. This file is the example the README
//! links to. Run as root.

mod support;

use nslab::Lab;

/// The Rust API runs node inits with the nslab binary; a test binary is not nslab, so
/// point it at the one cargo built (outside cargo, nslab on the PATH is used).
fn use_built_nslab() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("NSLAB_BIN", env!("CARGO_BIN_EXE_nslab")) };
}

const LAB: &str = r#"
name: it-api
nodes:
  client: { routes: [{ to: default, via: router }] }
  server: { routes: [{ to: default, via: router }] }
  router: { sysctls: { net.ipv4.ip_forward: 1 } }
links:
  - [client:eth0, router:eth1]
  - { endpoints: [server:eth0, router:eth2], addresses: [10.255.0.2/31, 10.255.0.3/31] }
tests:
  - { reach: { from: client, to: server, name: client-to-server } }
"#;

#[test]
fn client_reaches_a_server_through_a_router() {
    if !support::privileged() {
        return;
    }
    let _h = support::shared();
    use_built_nslab();
    let lab = Lab::from_yaml_str(LAB).unwrap().up().unwrap();

    // Probes are native: no ping binary involved.
    assert!(lab.reach("client", "server").unwrap());

    // Commands run inside a node, with output and status.
    let out = lab
        .exec("server", &["ip", "-4", "-o", "addr", "show", "eth0"])
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.255.0.2/31"));

    // A real TCP service: a server in one node, a client in another.
    let server = std::process::Command::new(env!("CARGO_BIN_EXE_nslab"))
        .args(["exec", "--lab", "it-api", "server", "--", "python3", "-c"])
        .arg("import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 8080)); s.listen(); c,_=s.accept(); c.sendall(b'hello'); c.close()")
        .spawn()
        .unwrap();
    let mut got = String::new();
    for _ in 0..50 {
        let o = lab
            .exec("client", &["python3", "-c", "import socket; s=socket.create_connection(('10.255.0.2', 8080), 1); print(s.recv(5).decode())"])
            .unwrap();
        if o.status.success() {
            got = String::from_utf8_lossy(&o.stdout).trim().to_string();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = support::wait_or_kill(server);
    assert_eq!(got, "hello");

    // The checks of the tests: section run by name.
    let r = lab.check("client-to-server").unwrap();
    assert!(r.passed(), "{:?}", r.reason);
    // Dropping `lab` tears it down; here we do it explicitly to see the result.
    lab.down().unwrap();
    assert!(!std::path::Path::new("/run/netns/nslab.it-api.client").exists());
}

#[test]
fn a_panicking_test_still_tears_its_lab_down() {
    if !support::privileged() {
        return;
    }
    let _h = support::shared();
    use_built_nslab();
    let r = std::panic::catch_unwind(|| {
        let _lab = Lab::from_yaml_str("name: it-panic\nnodes: { a: {}, b: {} }\nlinks: [[a, b]]\n")
            .unwrap()
            .up()
            .unwrap();
        assert!(std::path::Path::new("/run/netns/nslab.it-panic.a").exists());
        panic!("the test fails");
    });
    assert!(r.is_err());
    assert!(
        !std::path::Path::new("/run/netns/nslab.it-panic.a").exists(),
        "drop tore the lab down"
    );
}

#[test]
fn a_running_lab_changes_through_the_api() {
    if !support::privileged() {
        return;
    }
    let _h = support::shared();
    use_built_nslab();
    let yaml = LAB.replace("it-api\n", "it-api-chg\n");
    let mut lab = Lab::from_yaml_str(&yaml).unwrap().up().unwrap();
    assert!(lab.reach("client", "server").unwrap());

    // A cut link, then back.
    lab.set_link("router:eth2", false, false).unwrap();
    assert!(!lab.reach("client", "server").unwrap());
    lab.set_link("router:eth2", true, false).unwrap();
    assert!(lab.reach("client", "server").unwrap());

    // A second server joins behind the router, without restarting anything.
    let grown = yaml
        .replace(
            "  router: {",
            "  web: { routes: [{ to: default, via: router }] }\n  router: {",
        )
        .replace(
            "tests:\n",
            "  - [web:eth0, router:eth3]\ntests:\n  - { reach: { from: client, to: web, name: client-to-web } }\n",
        );
    lab.apply(Lab::from_yaml_str(&grown).unwrap()).unwrap();
    assert!(lab.reach("client", "web").unwrap());
    assert!(lab.reach("client", "server").unwrap());
    assert!(lab.check("client-to-web").unwrap().passed());
    lab.down().unwrap();
}

/// A test process that dies without running Drop (`kill -9`, a timeout, Ctrl-C of
/// `cargo test`, `panic = "abort"`) leaves its lab to the guard `up` started, which takes
/// it down. This test binary runs again, brings a lab up, says so and waits to be killed.
#[test]
fn a_killed_test_process_leaves_its_lab_to_the_guard() {
    if std::env::var_os("NSLAB_TEST_GUARD").is_some() {
        use_built_nslab();
        let _lab = Lab::from_yaml_str("name: it-guard\nnodes: { a: {}, b: {} }\nlinks: [[a, b]]\n")
            .unwrap()
            .up()
            .unwrap();
        println!("lab is up");
        std::thread::sleep(std::time::Duration::from_secs(600));
        return;
    }
    if !support::privileged() {
        return;
    }
    use std::io::BufRead;
    let _h = support::shared();
    let mut run = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_test_process_leaves_its_lab_to_the_guard",
        ])
        .arg("--nocapture")
        .env("NSLAB_TEST_GUARD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(run.stdout.take().unwrap());
    while !line.contains("lab is up") && out.read_line(&mut line).unwrap() > 0 {}
    let netns = std::path::Path::new("/run/netns/nslab.it-guard.a");
    let was_up = netns.exists();
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(
        line.contains("lab is up") && was_up,
        "the lab did not come up: {line}"
    );
    support::wait_for("the guard to take the lab down", || {
        !netns.exists() && !std::path::Path::new("/run/nslab/it-guard.journal").exists()
    });
    let ls = support::nslab().args(["ls"]).output().unwrap();
    assert!(
        !support::text(&ls).contains("it-guard"),
        "{}",
        support::text(&ls)
    );
}
