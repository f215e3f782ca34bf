//! A loopback SMTP sink that records every message it accepts; it speaks real SMTP
//! over TCP (no TLS) and never relays anything anywhere.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Longest command or data line accepted (RFC 5321 allows 1000; be lenient).
const MAX_LINE: u64 = 8 * 1024;
/// Largest message accepted by DATA.
const MAX_MESSAGE: usize = 1024 * 1024;
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;
/// A client silent for this long is dropped, so a stuck test cannot leak a task.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// One message accepted by the sink.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), without angle brackets.
    pub to: Vec<String>,
    /// The message (headers and body) with dot-stuffing undone, CRLF line ends.
    pub data: String,
    /// The user name of the session's AUTH, if the client authenticated.
    pub auth_user: Option<String>,
}

impl ReceivedMail {
    /// The value of the first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The body after the header block.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

struct Shared {
    mails: Mutex<Vec<ReceivedMail>>,
    /// The number of messages received; waiters watch it instead of polling.
    count: watch::Sender<usize>,
}

impl Shared {
    fn push(&self, mail: ReceivedMail) {
        let mut mails = self.mails.lock().unwrap_or_else(PoisonError::into_inner);
        mails.push(mail);
        // Updated under the lock so the count never runs ahead of the list.
        self.count.send_replace(mails.len());
    }

    fn snapshot(&self) -> Vec<ReceivedMail> {
        self.mails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running SMTP sink on 127.0.0.1; stops when dropped.
pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("tests need a free loopback port for the SMTP sink");
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        SmtpSink { port, shared, task }
    }

    /// The port the sink listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared.snapshot()
    }

    /// Waits until at least `n` messages arrived or `timeout` passes, then returns
    /// what arrived (the caller asserts on the count).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut count = self.shared.count.subscribe();
        // A timeout is the test's failure case, reported by the caller's assertion.
        let _ = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n)).await;
        self.shared.snapshot()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        // Reap finished sessions so the set stays bounded by live connections.
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            connections.join_next().await;
            continue;
        }
        // An accept error on loopback means the sink is broken; stopping (tests then
        // see missing mail) beats spinning on the error.
        let Ok((stream, _peer)) = listener.accept().await else {
            return;
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            // A broken session only ends that session; the test sees missing mail.
            let _ = Session::new(stream, shared).run().await;
        });
    }
}

/// One SMTP connection.
struct Session {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    auth_user: Option<String>,
    from: Option<String>,
    to: Vec<String>,
}

impl Session {
    fn new(stream: TcpStream, shared: Arc<Shared>) -> Self {
        let (read, write) = stream.into_split();
        Self {
            reader: BufReader::new(read),
            writer: write,
            shared,
            auth_user: None,
            from: None,
            to: Vec::new(),
        }
    }

    async fn reply(&mut self, text: &str) -> io::Result<()> {
        self.writer.write_all(text.as_bytes()).await?;
        self.writer.flush().await
    }

    /// Reads one line without its CRLF; `None` at end of stream.
    async fn line(&mut self) -> io::Result<Option<String>> {
        let line = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut self.reader))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "SMTP client idle"))??;
        Ok(line.map(|l| String::from_utf8_lossy(&l).into_owned()))
    }

    async fn run(mut self) -> io::Result<()> {
        self.reply("220 127.0.0.1 hookbox test sink ESMTP\r\n")
            .await?;
        while let Some(line) = self.line().await? {
            let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            match verb.to_ascii_uppercase().as_str() {
                "EHLO" => {
                    self.reset();
                    self.reply(
                        "250-127.0.0.1 greets you\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
                    )
                    .await?;
                }
                "HELO" => {
                    self.reset();
                    self.reply("250 127.0.0.1\r\n").await?;
                }
                "AUTH" => self.auth(arg).await?,
                "MAIL" => match path_arg(arg, "FROM:") {
                    Some(from) => {
                        self.reset();
                        self.from = Some(from);
                        self.reply("250 2.1.0 OK\r\n").await?;
                    }
                    None => {
                        self.reply("501 5.5.4 syntax: MAIL FROM:<address>\r\n")
                            .await?
                    }
                },
                "RCPT" => match (self.from.is_some(), path_arg(arg, "TO:")) {
                    (false, _) => self.reply("503 5.5.1 MAIL first\r\n").await?,
                    (true, Some(to)) => {
                        self.to.push(to);
                        self.reply("250 2.1.5 OK\r\n").await?;
                    }
                    (true, None) => {
                        self.reply("501 5.5.4 syntax: RCPT TO:<address>\r\n")
                            .await?
                    }
                },
                "DATA" => self.data().await?,
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 OK\r\n").await?;
                }
                "NOOP" => self.reply("250 2.0.0 OK\r\n").await?,
                "QUIT" => {
                    self.reply("221 2.0.0 bye\r\n").await?;
                    return Ok(());
                }
                _ => self.reply("502 5.5.2 command not implemented\r\n").await?,
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    /// AUTH PLAIN and LOGIN, with or without an initial response; any password is
    /// accepted, the user name is recorded.
    async fn auth(&mut self, arg: &str) -> io::Result<()> {
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_owned())),
            None => (arg.trim().to_ascii_uppercase(), None),
        };
        let user = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(r) => r,
                    None => self.challenge("").await?,
                };
                // authzid NUL authcid NUL password: the user is the authcid.
                decode(&response).and_then(|plain| plain.split('\0').nth(1).map(str::to_owned))
            }
            "LOGIN" => {
                let user = match initial {
                    Some(r) => r,
                    None => self.challenge("VXNlcm5hbWU6").await?,
                };
                let _password = self.challenge("UGFzc3dvcmQ6").await?;
                decode(&user)
            }
            _ => {
                return self
                    .reply("504 5.5.4 unrecognised authentication mechanism\r\n")
                    .await;
            }
        };
        match user {
            Some(user) => {
                self.auth_user = Some(user);
                self.reply("235 2.7.0 authenticated\r\n").await
            }
            None => self.reply("501 5.5.2 cannot decode response\r\n").await,
        }
    }

    /// Sends a 334 challenge and reads the client's answer.
    async fn challenge(&mut self, challenge: &str) -> io::Result<String> {
        self.reply(&format!("334 {challenge}\r\n")).await?;
        self.line()
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed during AUTH"))
    }

    async fn data(&mut self) -> io::Result<()> {
        let Some(from) = self.from.clone() else {
            return self.reply("503 5.5.1 MAIL first\r\n").await;
        };
        if self.to.is_empty() {
            return self.reply("503 5.5.1 RCPT first\r\n").await;
        }
        self.reply("354 end data with <CR><LF>.<CR><LF>\r\n")
            .await?;
        let mut data = String::new();
        let mut too_big = false;
        loop {
            let line = self.line().await?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "closed during DATA")
            })?;
            if line == "." {
                break;
            }
            // Undo dot-stuffing: a leading '.' was doubled by the client.
            let line = line.strip_prefix('.').unwrap_or(&line);
            if data.len() + line.len() + 2 > MAX_MESSAGE {
                too_big = true;
            } else if !too_big {
                data.push_str(line);
                data.push_str("\r\n");
            }
        }
        let to = std::mem::take(&mut self.to);
        self.from = None;
        if too_big {
            return self.reply("552 5.3.4 message too big\r\n").await;
        }
        self.shared.push(ReceivedMail {
            from,
            to,
            data,
            auth_user: self.auth_user.clone(),
        });
        self.reply("250 2.0.0 queued\r\n").await
    }
}

/// Reads up to LF, bounded by `MAX_LINE`; strips CRLF. `None` at a clean end of stream.
async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = reader.take(MAX_LINE).read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "line too long or unterminated",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Extracts the address of `FROM:<a> PARAMS` / `TO:<a>`; `prefix` is case-insensitive.
fn path_arg(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let (address, _params) = inner.split_once('>')?;
    Some(address.to_owned())
}

fn decode(b64: &str) -> Option<String> {
    let bytes = BASE64.decode(b64.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

/// The sink against a hand-written client: several messages on one connection,
/// RSET, and dot-stuffing undone.
#[tokio::test]
async fn sink_speaks_smtp() {
    let sink = SmtpSink::start().await;
    let stream = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .expect("connect");
    let mut client = BufReader::new(stream);
    let mut step = async |send: &str, code: &str| {
        if !send.is_empty() {
            client
                .get_mut()
                .write_all(send.as_bytes())
                .await
                .expect("write");
        }
        // Multi-line replies end with "<code> " (space after the code).
        loop {
            let line = read_line(&mut client).await.expect("read").expect("reply");
            let line = String::from_utf8(line).expect("utf-8 reply");
            assert!(line.starts_with(code), "sent {send:?}, got {line:?}");
            if line.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        }
    };
    step("", "220").await;
    step("EHLO client\r\n", "250").await;
    step("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "235").await;
    step("MAIL FROM:<a@example.com>\r\n", "250").await;
    step("RCPT TO:<dropped@example.com>\r\n", "250").await;
    step("RSET\r\n", "250").await;
    step("DATA\r\n", "503").await;
    step("MAIL FROM:<a@example.com> BODY=8BITMIME\r\n", "250").await;
    step("RCPT TO:<b@example.com>\r\n", "250").await;
    step("RCPT TO:<c@example.com>\r\n", "250").await;
    step("DATA\r\n", "354").await;
    step("Subject: one\r\n\r\n..leading dot\r\n.\r\n", "250").await;
    step("NOOP\r\n", "250").await;
    step("MAIL FROM:<>\r\n", "250").await;
    step("RCPT TO:<d@example.com>\r\n", "250").await;
    step("DATA\r\n", "354").await;
    step("Subject: two\r\n\r\nbody\r\n.\r\n", "250").await;
    step("QUIT\r\n", "221").await;

    let mails = sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0].from, "a@example.com");
    assert_eq!(mails[0].to, ["b@example.com", "c@example.com"]);
    assert_eq!(mails[0].data, "Subject: one\r\n\r\n.leading dot\r\n");
    assert_eq!(mails[0].header("subject").as_deref(), Some("one"));
    assert_eq!(mails[0].auth_user.as_deref(), Some("alice"));
    assert_eq!(mails[1].from, "");
    assert_eq!(mails[1].body(), "body\r\n");
    assert_eq!(sink.messages(), mails);
}
