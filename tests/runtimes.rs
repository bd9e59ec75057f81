//! Real runtimes, unmodified, under the library on 127.0.0.1: OpenBSD nc,
//! socat, curl, python3, Java, Perl and Node.js each make an outbound
//! connection and accept an inbound one, and `ss -tno` must show the
//! runtime's end of each with a keepalive timer near KEEPIDLE. The same run
//! without the library is the control: no timer (curl with --no-keepalive;
//! curl's own default keepalive is checked separately, and wins over ours).
//!
//! The other end of every connection is this test process, which the
//! library is not loaded into, so exactly one end is the runtime's.
//! A missing runtime fails the test with the command that installs it
//! (scripts/test.sh installs them all).

mod common;

use common::process::Process;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The idle time we configure; distinct from curl's own 60 s.
const IDLE: &str = "45";
const IDLE_SECS: f64 = 45.0;
/// Java compiles its single-file program first: slow on a busy 2-core box.
const START_TIMEOUT: Duration = Duration::from_secs(40);

/// Fails (never skips) when `program` cannot be started, naming the install
/// command. (Only start-up counts: `nc -h` exits with status 1.)
fn require(program: &str, version_arg: &str, install: &str) {
    let ok = Command::new(program)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "{program} is missing: {install}");
}

/// How to start a runtime's client (to connect to PORT) or server (to listen
/// on PORT), and the line it prints once its connection is up, if any.
struct Peer {
    program: String,
    args: Vec<String>,
    marker: Option<&'static str>,
}

fn peer(program: &str, args: &[&str], marker: Option<&'static str>) -> Peer {
    Peer {
        program: program.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        marker,
    }
}

fn spawn(peer: &Peer, preload: bool, label: &str) -> Process {
    let mut cmd = command(&peer.program, preload, &[("KEEPIDLE", IDLE)]);
    cmd.args(&peer.args);
    Process::spawn(cmd, label)
}

/// The `ss` line of the connection whose local end is `local` and remote
/// end `peer` (ports), waiting for it to appear.
fn ss_line(local: u16, peer: u16) -> String {
    let found = wait_for(Duration::from_secs(10), || {
        ss_lines(local).into_iter().find(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.len() >= 4
                && words[2].ends_with(&format!(":{local}"))
                && words[3].ends_with(&format!(":{peer}"))
        })
    });
    found.unwrap_or_else(|| panic!("no connection {local} -> {peer}: {:?}", ss_lines(local)))
}

/// What the runtime's end must show: a timer near KEEPIDLE with the
/// library, none without.
fn check(line: &str, preload: bool, what: &str) {
    let timer = keepalive_timer_secs(line);
    if preload {
        let secs = timer.unwrap_or_else(|| panic!("{what}: no keepalive timer: {line}"));
        assert!(
            (IDLE_SECS - 10.0..=IDLE_SECS).contains(&secs),
            "{what}: timer {secs} s, not near KEEPIDLE={IDLE}: {line}"
        );
    } else {
        assert!(timer.is_none(), "{what}: a timer without us: {line}");
    }
    println!("{what}: {line}");
}

/// Accepts one connection on `listener` within START_TIMEOUT, while making
/// sure the runtime has not died.
fn accept(listener: &TcpListener, process: &mut Process) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if let Some((status, _)) = process.wait_exit(Duration::ZERO) {
            panic!(
                "{} exited ({status}) before connecting: {}",
                process.label,
                process.stderr()
            );
        }
        assert!(
            start.elapsed() < START_TIMEOUT,
            "{} did not connect: {}",
            process.label,
            process.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The runtime connects to us; returns the `ss` line of its end. `serve`
/// talks to it first (curl expects an HTTP answer).
fn outbound(
    client: impl Fn(u16) -> Peer,
    preload: bool,
    what: &str,
    serve: impl Fn(&mut TcpStream),
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = client(port);
    let mut process = spawn(&peer, preload, what);
    let mut stream = accept(&listener, &mut process);
    serve(&mut stream);
    if let Some(marker) = peer.marker {
        assert!(
            process.wait_stdout(marker, START_TIMEOUT).is_some(),
            "{what}: no {marker:?}: {}",
            process.stderr()
        );
    }
    let runtime_port = stream.peer_addr().unwrap().port();
    let line = ss_line(runtime_port, port);
    drop(process);
    line
}

/// Whether something listens on `port` (any address family).
fn listening(port: u16) -> bool {
    let out = Command::new("ss").args(["-tlnH"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|line| line.contains(&format!(":{port} ")))
}

/// The runtime accepts a connection from us; returns the `ss` line of its
/// end (the accepted socket).
fn inbound(server: impl Fn(u16) -> Peer, preload: bool, what: &str) -> String {
    let port = free_port();
    let peer = server(port);
    let mut process = spawn(&peer, preload, what);
    let up = wait_for(START_TIMEOUT, || {
        if let Some((status, _)) = process.wait_exit(Duration::ZERO) {
            panic!("{what} exited ({status}): {}", process.stderr());
        }
        listening(port).then_some(())
    });
    assert!(up.is_some(), "{what} did not listen on {port}");
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    match peer.marker {
        Some(marker) => assert!(
            process.wait_stdout(marker, START_TIMEOUT).is_some(),
            "{what}: no {marker:?}: {}",
            process.stderr()
        ),
        // No line to wait for (nc, socat): give accept() a moment; the
        // timer check below waits no further.
        None => std::thread::sleep(Duration::from_millis(300)),
    }
    let line = ss_line(port, stream.local_addr().unwrap().port());
    drop(process);
    line
}

fn no_talk(_: &mut TcpStream) {}

/// Both directions with the library, and both without (the control).
fn both_ways(name: &str, client: impl Fn(u16) -> Peer, server: impl Fn(u16) -> Peer) {
    for preload in [true, false] {
        let with = if preload { "with" } else { "without" };
        let line = outbound(
            &client,
            preload,
            &format!("{name} outbound {with}"),
            no_talk,
        );
        check(&line, preload, &format!("{name} outbound {with} library"));
        let line = inbound(&server, preload, &format!("{name} inbound {with}"));
        check(&line, preload, &format!("{name} inbound {with} library"));
    }
}

#[test]
fn openbsd_netcat() {
    require("nc", "-h", "apt-get install -y netcat-openbsd");
    both_ways(
        "nc",
        |port| peer("nc", &["127.0.0.1", &port.to_string()], None),
        |port| peer("nc", &["-l", "127.0.0.1", &port.to_string()], None),
    );
}

#[test]
fn socat() {
    require("socat", "-V", "apt-get install -y socat");
    both_ways(
        "socat",
        |port| peer("socat", &["-", &format!("TCP4:127.0.0.1:{port}")], None),
        |port| {
            let listen = format!("TCP4-LISTEN:{port},bind=127.0.0.1,reuseaddr");
            peer("socat", &[&listen, "-"], None)
        },
    );
}

const PYTHON: &str = "/usr/bin/python3";

#[test]
fn python3() {
    // The system interpreter, not a pyenv shim found first on PATH.
    require(PYTHON, "--version", "apt-get install -y python3");
    let client = "import socket, sys\n\
                  s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
                  print('connected', flush=True)\n\
                  sys.stdin.read()\n";
    let server = "import socket, sys\n\
                  l = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n\
                  c, _ = l.accept()\n\
                  print('accepted', flush=True)\n\
                  sys.stdin.read()\n";
    both_ways(
        "python3",
        |port| {
            peer(
                PYTHON,
                &["-c", client, &port.to_string()],
                Some("connected"),
            )
        },
        |port| peer(PYTHON, &["-c", server, &port.to_string()], Some("accepted")),
    );
}

#[test]
fn perl_io_socket_inet() {
    require("perl", "-v", "apt-get install -y perl");
    let client = "use IO::Socket::INET; $| = 1;\n\
                  my $s = IO::Socket::INET->new(PeerAddr => \"127.0.0.1:$ARGV[0]\") or die $!;\n\
                  print \"connected\\n\"; <STDIN>;\n";
    let server = "use IO::Socket::INET; $| = 1;\n\
                  my $l = IO::Socket::INET->new(LocalAddr => \"127.0.0.1:$ARGV[0]\",\n\
                  Listen => 5, ReuseAddr => 1) or die $!;\n\
                  my $c = $l->accept or die $!; print \"accepted\\n\"; <STDIN>;\n";
    both_ways(
        "perl",
        |port| {
            peer(
                "perl",
                &["-e", client, &port.to_string()],
                Some("connected"),
            )
        },
        |port| peer("perl", &["-e", server, &port.to_string()], Some("accepted")),
    );
}

#[test]
fn nodejs_net() {
    require("node", "--version", "apt-get install -y nodejs");
    let client = "const net = require('net');\n\
                  net.connect(+process.argv[1], '127.0.0.1', () => console.log('connected'));\n";
    let server = "const net = require('net');\n\
                  net.createServer(() => console.log('accepted'))\n\
                  .listen(+process.argv[1], '127.0.0.1');\n";
    both_ways(
        "node",
        |port| {
            peer(
                "node",
                &["-e", client, &port.to_string()],
                Some("connected"),
            )
        },
        |port| peer("node", &["-e", server, &port.to_string()], Some("accepted")),
    );
}

/// A single-file Java program (JDK 11+ runs `java Prog.java` directly).
fn java_source() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runtimes");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("KeepaliveProbe.java");
    std::fs::write(
        &path,
        r#"import java.net.*;

public class KeepaliveProbe {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[1]);
        Socket socket;
        if (args[0].equals("connect")) {
            socket = new Socket("127.0.0.1", port);
            System.out.println("connected");
        } else {
            ServerSocket server = new ServerSocket(port, 5, InetAddress.getByName("127.0.0.1"));
            socket = server.accept();
            System.out.println("accepted");
        }
        System.out.flush();
        System.in.read();
        socket.close();
    }
}
"#,
    )
    .unwrap();
    path
}

#[test]
fn java_single_file_program() {
    require(
        "java",
        "-version",
        "apt-get install -y openjdk-17-jdk-headless",
    );
    let source = java_source();
    let source = source.to_str().unwrap();
    both_ways(
        "java",
        |port| {
            peer(
                "java",
                &[source, "connect", &port.to_string()],
                Some("connected"),
            )
        },
        |port| {
            peer(
                "java",
                &[source, "listen", &port.to_string()],
                Some("accepted"),
            )
        },
    );
}

/// Reads an HTTP request and answers with a body shorter than announced,
/// so curl waits on an idle connection for the rest.
fn half_an_http_answer(stream: &mut TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
        line.clear();
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello")
        .unwrap();
}

fn curl_client(port: u16, own_keepalive: bool) -> Peer {
    let url = format!("http://127.0.0.1:{port}/");
    let mut args = vec!["-s", "-o", "/dev/null", url.as_str()];
    if !own_keepalive {
        args.insert(0, "--no-keepalive");
    }
    peer("curl", &args, None)
}

/// A minimal FTP server on the control connection `control`: answers what
/// curl sends, and for RETR connects to the address curl gave in EPRT/PORT
/// (active mode: curl accepts that data connection) and sends a little.
/// Returns curl's data port and ours once the data connection is up.
fn fake_ftp(control: TcpStream, ports: std::sync::mpsc::Sender<(u16, u16)>) {
    let mut reply = control.try_clone().unwrap();
    let mut say = move |text: &str| reply.write_all(format!("{text}\r\n").as_bytes());
    if say("220 fake ftp").is_err() {
        return;
    }
    let mut data_address: Option<(String, u16)> = None;
    // Held until curl goes away (its control connection closes).
    let mut _data: Option<TcpStream> = None;
    for line in BufReader::new(control).lines() {
        let Ok(line) = line else { return };
        let (verb, argument) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let answer = match verb {
            "USER" => "331 password please".to_string(),
            "PASS" => "230 logged in".to_string(),
            "PWD" => "257 \"/\"".to_string(),
            "CWD" => "250 ok".to_string(),
            "TYPE" => "200 ok".to_string(),
            "SIZE" => "213 1000".to_string(),
            "EPRT" => {
                // |1|127.0.0.1|PORT|
                let parts: Vec<&str> = argument.split('|').collect();
                data_address = Some((parts[2].to_string(), parts[3].parse().unwrap()));
                "200 ok".to_string()
            }
            "PORT" => {
                let n: Vec<u16> = argument.split(',').map(|p| p.parse().unwrap()).collect();
                data_address = Some((
                    format!("{}.{}.{}.{}", n[0], n[1], n[2], n[3]),
                    n[4] * 256 + n[5],
                ));
                "200 ok".to_string()
            }
            "EPSV" | "PASV" => "500 active mode only".to_string(),
            "RETR" => {
                let (host, port) = data_address.clone().expect("RETR before EPRT/PORT");
                let mut data = TcpStream::connect((host.as_str(), port)).unwrap();
                let _ = say("150 here it comes");
                let _ = data.write_all(b"hello");
                let _ = ports.send((port, data.local_addr().unwrap().port()));
                _data = Some(data);
                continue;
            }
            "QUIT" => return,
            _ => "502 not implemented".to_string(),
        };
        if say(&answer).is_err() {
            return;
        }
    }
}

/// curl in FTP active mode listens and accepts the data connection: its
/// inbound case. Returns the `ss` line of curl's end of the data connection.
fn curl_ftp_inbound(preload: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("ftp://127.0.0.1:{port}/file");
    let what = format!("curl ftp active preload={preload}");
    let mut cmd = command("curl", preload, &[("KEEPIDLE", IDLE)]);
    cmd.args([
        "--no-keepalive",
        "-s",
        "-o",
        "/dev/null",
        "--ftp-port",
        "127.0.0.1",
        &url,
    ]);
    let mut process = Process::spawn(cmd, &what);
    let control = accept(&listener, &mut process);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || fake_ftp(control, tx));
    let (curl_port, our_port) = rx
        .recv_timeout(START_TIMEOUT)
        .unwrap_or_else(|_| panic!("{what}: no data connection: {}", process.stderr()));
    let line = ss_line(curl_port, our_port);
    drop(process);
    line
}

#[test]
fn curl_no_keepalive() {
    require("curl", "--version", "apt-get install -y curl");
    for preload in [true, false] {
        let what = format!("curl http outbound preload={preload}");
        let line = outbound(
            |port| curl_client(port, false),
            preload,
            &what,
            half_an_http_answer,
        );
        check(&line, preload, &what);
        let line = curl_ftp_inbound(preload);
        check(
            &line,
            preload,
            &format!("curl ftp inbound preload={preload}"),
        );
    }
}

#[test]
fn curls_own_keepalive_wins_over_ours() {
    // Without --no-keepalive curl sets SO_KEEPALIVE and TCP_KEEPIDLE=60
    // itself: the program's choice, which the library must leave alone.
    require("curl", "--version", "apt-get install -y curl");
    for preload in [true, false] {
        let what = format!("curl default keepalive preload={preload}");
        let line = outbound(
            |port| curl_client(port, true),
            preload,
            &what,
            half_an_http_answer,
        );
        let secs = keepalive_timer_secs(&line).unwrap_or_else(|| panic!("{what}: {line}"));
        assert!((50.0..=60.0).contains(&secs), "{what}: {secs} s: {line}");
    }
}

#[test]
fn ftp_reply_parsing_is_not_the_problem() {
    // A self-check of the fake server's EPRT/PORT handling, without curl.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let data = TcpListener::bind("127.0.0.1:0").unwrap();
    let data_port = data.local_addr().unwrap().port();
    let mut client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    let (control, _) = server.accept().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || fake_ftp(control, tx));
    let command = format!(
        "USER a\r\nPORT 127,0,0,1,{},{}\r\nRETR f\r\n",
        data_port / 256,
        data_port % 256
    );
    client.write_all(command.as_bytes()).unwrap();
    let (mut accepted, _) = data.accept().unwrap();
    let mut hello = [0u8; 5];
    accepted.read_exact(&mut hello).unwrap();
    assert_eq!(&hello, b"hello");
    assert_eq!(rx.recv().unwrap().0, data_port);
}
