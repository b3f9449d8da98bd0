//! Delivering a run's OpenLineage events (built by `repro_core::openlineage`) where
//! `[openlineage]` says: appended to `file` as JSON lines, POSTed to `url` as the OpenLineage
//! HTTP clients do (`{url}/api/v1/lineage`, `Content-Type: application/json`, the key as
//! `Authorization: Bearer`).
//!
//! Nothing here fails a run, and nothing is lost to a killed repro. Every event is queued in
//! `.repro/openlineage/queue/` (one file each, written to a temp file and renamed) before it
//! is sent; an event the endpoint does not take — connection refused, a timeout, a 5xx, a
//! 401 — stays there, and every delivery, this run's or the next one's, sends the queue in
//! order and stops at the first failure, so the endpoint sees each run's START before its end. An event the endpoint refuses as malformed (400, 413, 422) would be
//! refused again: it is moved to `.repro/openlineage/rejected/` and said so. Problems are one
//! line each on the reporter.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use repro_core::openlineage::{self as ol, RunEvent};
use repro_core::record::RunRecord;
use repro_store::config::OpenLineageSection;
use repro_store::Store;

use crate::Reporter;

/// At most this many events wait in the queue; past it the oldest are dropped (and said so).
pub const MAX_QUEUED: usize = 10_000;

/// Where events go, as configured; `None` from [`Emitter::new`] when `[openlineage]` is absent.
pub struct Emitter {
    section: OpenLineageSection,
    /// The folder `file` is relative to (the one holding `.repro`).
    project: PathBuf,
    /// `.repro/openlineage`: `queue/`, `rejected/`, `queue.lock`.
    dir: PathBuf,
    /// The store's temp folder (fsck removes what a killed writer left there).
    tmp: PathBuf,
    api_key: Option<String>,
    agent: ureq::Agent,
}

/// What one delivery did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Events the endpoint took (queued ones included).
    pub sent: usize,
    /// Of those, events that had waited in the queue.
    pub sent_from_queue: usize,
    /// Events waiting in the queue after this delivery.
    pub queued: usize,
    /// Why the endpoint did not take an event, when it did not.
    pub unreachable: Option<String>,
    /// Events the endpoint refused as malformed, moved to `rejected/`, with its answer.
    pub rejected: Vec<String>,
    /// Queued events dropped because the queue was full.
    pub dropped: usize,
}

enum Post {
    Sent,
    /// Worth retrying: the endpoint is down, slow, failing, or refused the key.
    Unreachable(String),
    /// The endpoint refused this event itself.
    Rejected(String),
}

impl Emitter {
    /// The emitter for this store, when `[openlineage]` is configured. `vars` is the
    /// environment the run was given; the API key is read from it by the name configured.
    pub fn new(store: &Store, vars: &BTreeMap<String, String>, reporter: &dyn Reporter) -> Option<Emitter> {
        let section = store.config.openlineage.clone()?;
        let api_key = match section.api_key_env.as_deref() {
            Some(name) => {
                let key = vars.get(name).map(|k| k.trim().to_string()).filter(|k| !k.is_empty());
                if key.is_none() && section.url.is_some() {
                    reporter.warn(&format!(
                        "[openlineage] api_key_env names {name}, which is unset: OpenLineage events are sent without a key"
                    ));
                }
                key
            }
            None => None,
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(section.timeout_secs())))
            .build()
            .into();
        Some(Emitter {
            project: store.project_dir().to_path_buf(),
            dir: store.root().join("openlineage"),
            tmp: store.objects.tmp_dir().to_path_buf(),
            section,
            api_key,
            agent,
        })
    }

    pub fn namespace(&self) -> &str {
        self.section.namespace()
    }

    /// The queue's folder: one `<time>-<pid>-<n>.json` per event, sent in name order.
    pub fn queue_dir(&self) -> PathBuf {
        self.dir.join("queue")
    }

    /// Writes `event` to the file and the endpoint (after what is queued), reporting problems.
    pub fn emit(&self, event: &RunEvent, reporter: &dyn Reporter) {
        let line = serde_json::to_string(event).expect("an OpenLineage event serializes");
        if let Some(file) = &self.section.file {
            let path = self.project.join(file);
            if let Err(e) = append_line(&path, &line) {
                reporter.warn(&format!(
                    "cannot append the OpenLineage {} event to {}: {e}",
                    event.event_type.as_str(),
                    path.display()
                ));
            }
        }
        if self.section.url.is_some() {
            let d = self.deliver(Some(line.as_bytes()));
            self.report(&d, event.event_type == ol::EventType::Start, reporter);
        }
    }

    /// Sends what is queued, in order, until the endpoint fails.
    pub fn flush(&self) -> Delivery {
        self.deliver(None)
    }

    fn report(&self, d: &Delivery, starting: bool, reporter: &dyn Reporter) {
        let url = self.section.post_url().unwrap_or_default();
        if d.sent_from_queue > 0 {
            reporter.message(&format!("OpenLineage: delivered {} queued event(s) to {url}", d.sent_from_queue));
        }
        for r in &d.rejected {
            reporter.warn(&format!(
                "the OpenLineage endpoint {url} refused an event ({r}); it is kept in {}",
                self.dir.join("rejected").display()
            ));
        }
        if d.dropped > 0 {
            reporter.warn(&format!("the OpenLineage queue was full: its {} oldest event(s) were dropped", d.dropped));
        }
        if let Some(why) = &d.unreachable {
            let when = if starting { "retried when the run ends" } else { "retried on the next run" };
            reporter.warn(&format!(
                "OpenLineage endpoint {url} unreachable ({why}); {} event(s) queued in {}, {when}",
                d.queued,
                self.queue_dir().display()
            ));
        }
    }

    fn deliver(&self, new: Option<&[u8]>) -> Delivery {
        let mut d = Delivery::default();
        let queue = self.queue_dir();
        // Written ahead: a new event is in the queue before it is sent, so a repro killed
        // before or during the POST loses nothing (at worst the endpoint gets it twice, which
        // OpenLineage consumers take: events are keyed by run and type). Only when it cannot
        // be queued is it sent straight away.
        let mut direct = None;
        let mine = match new.map(|bytes| (bytes, self.enqueue(bytes))) {
            Some((_, Ok(path))) => Some(path),
            Some((bytes, Err(e))) => {
                direct = Some((bytes, e));
                None
            }
            None => None,
        };
        // One delivery at a time per store, so two runs never send a queued event twice.
        let _lock = match self.lock() {
            Ok(l) => l,
            Err(e) => {
                let mut why = format!("cannot lock the queue: {e}");
                if let Some((_, queue_error)) = &direct {
                    why.push_str(&format!("; the event could not be queued either: {queue_error}"));
                }
                d.unreachable = Some(why);
                d.queued = queued_files(&queue).len();
                return d;
            }
        };
        for file in queued_files(&queue) {
            let Ok(bytes) = fs::read(&file) else { continue };
            match self.post(&bytes) {
                Post::Sent => {
                    let _ = fs::remove_file(&file);
                    d.sent += 1;
                    if mine.as_ref() != Some(&file) {
                        d.sent_from_queue += 1;
                    }
                }
                Post::Rejected(why) => {
                    self.keep_rejected(&file);
                    d.rejected.push(why);
                }
                Post::Unreachable(why) => {
                    d.unreachable = Some(why);
                    break;
                }
            }
        }
        if let Some((bytes, queue_error)) = direct {
            let lost = |why: String| format!("{why}; the event could not be queued either: {queue_error}");
            match d.unreachable.is_none().then(|| self.post(bytes)) {
                Some(Post::Sent) => d.sent += 1,
                Some(Post::Rejected(why)) => d.rejected.push(why),
                Some(Post::Unreachable(why)) => d.unreachable = Some(lost(why)),
                None => d.unreachable = d.unreachable.take().map(lost),
            }
        }
        let mut waiting = queued_files(&queue);
        if waiting.len() > MAX_QUEUED {
            let over = waiting.len() - MAX_QUEUED;
            for f in waiting.drain(..over) {
                if fs::remove_file(f).is_ok() {
                    d.dropped += 1;
                }
            }
        }
        d.queued = waiting.len();
        d
    }

    fn post(&self, body: &[u8]) -> Post {
        let Some(url) = self.section.post_url() else { return Post::Unreachable("no url".into()) };
        let mut req = self.agent.post(&url).content_type("application/json");
        if let Some(key) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {key}"));
        }
        match req.send(body) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let answer = resp.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
                match status {
                    200..=299 => Post::Sent,
                    400 | 413 | 422 => Post::Rejected(format!("HTTP {status}{}", brief(&answer))),
                    401 | 403 => Post::Unreachable(format!("HTTP {status}: is the key in api_key_env right?")),
                    _ => Post::Unreachable(format!("HTTP {status}")),
                }
            }
            Err(e) => Post::Unreachable(reason(&e)),
        }
    }

    fn lock(&self) -> std::io::Result<fs::File> {
        fs::create_dir_all(&self.dir)?;
        let f = fs::OpenOptions::new().create(true).truncate(false).write(true).open(self.dir.join("queue.lock"))?;
        f.lock()?;
        Ok(f)
    }

    /// The event in a complete temp file in the store's temp folder (named for this process).
    fn write_temp(&self, bytes: &[u8]) -> std::io::Result<PathBuf> {
        fs::create_dir_all(&self.tmp)?;
        let tmp = self.tmp.join(format!("{}-openlineage-{}.json", std::process::id(), uuid::Uuid::new_v4().simple()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(tmp)
    }

    /// Queues an event: a complete temp file renamed into the queue, so the queue never holds
    /// half an event.
    fn enqueue(&self, bytes: &[u8]) -> std::io::Result<PathBuf> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let queue = self.queue_dir();
        fs::create_dir_all(&queue)?;
        let tmp = self.write_temp(bytes)?;
        let name = format!(
            "{:013}-{:010}-{:06}.json",
            repro_util::clock::now_ms(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = queue.join(name);
        fs::rename(&tmp, &path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        if let Ok(d) = fs::File::open(&queue) {
            let _ = d.sync_all();
        }
        Ok(path)
    }

    fn keep_rejected(&self, file: &Path) {
        let dir = self.dir.join("rejected");
        let name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        if fs::create_dir_all(&dir).is_err() || fs::rename(file, dir.join(name)).is_err() {
            let _ = fs::remove_file(file);
        }
    }
}

/// The queued events, oldest first (names sort by time, then process and sequence).
fn queued_files(queue: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(queue) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    files
}

/// One JSON line appended in one write (O_APPEND), so concurrent runs never interleave lines.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut f = fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(format!("{line}\n").as_bytes())
}

/// The start of an endpoint's answer, on one line.
fn brief(answer: &str) -> String {
    let one: String = answer.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
    if one.is_empty() {
        String::new()
    } else {
        format!(": {}", repro_core::text::escape_one_line(&one))
    }
}

/// The cause of a transport error, without ureq's wrapping.
fn reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        ureq::Error::HostNotFound => "no such host".into(),
        ureq::Error::Timeout(_) => "timed out".into(),
        other => other.to_string(),
    }
}

/// A run's events: START once it is recorded as started, then the end once it is recorded as
/// ended (or FAIL with repro's error when recording it failed).
pub struct Lineage {
    emitter: Option<Emitter>,
    /// The record as it was when START was sent.
    started: Option<RunRecord>,
}

impl Lineage {
    pub fn new(store: &Store, vars: &BTreeMap<String, String>, reporter: &dyn Reporter) -> Lineage {
        Lineage { emitter: Emitter::new(store, vars, reporter), started: None }
    }

    /// START: the run row exists, its inputs are recorded; `outputs` are the declared outputs.
    pub fn start(&mut self, record: &RunRecord, started_ms: i64, outputs: &[String], reporter: &dyn Reporter) {
        let Some(emitter) = &self.emitter else { return };
        let time = repro_util::clock::rfc3339(started_ms);
        emitter.emit(&ol::start_event(record, emitter.namespace(), &time, outputs), reporter);
        self.started = Some(record.clone());
    }

    /// COMPLETE, FAIL or ABORT, from the run's final record.
    pub fn end(&mut self, record: &RunRecord, reporter: &dyn Reporter) {
        let (Some(emitter), Some(_)) = (&self.emitter, self.started.take()) else { return };
        emitter.emit(&ol::end_event(record, emitter.namespace()), reporter);
    }

    /// FAIL: repro could not record the run's end (`message` is its error).
    pub fn failed(&mut self, message: &str, reporter: &dyn Reporter) {
        let (Some(emitter), Some(record)) = (&self.emitter, self.started.take()) else { return };
        let time = repro_util::clock::rfc3339(repro_util::clock::now_ms());
        emitter.emit(&ol::failed_event(&record, emitter.namespace(), &time, message), reporter);
    }
}

/// `repro lineage flush`: sends what waits in the queue, in order, now. Refused (exit 2) when
/// the store sends events nowhere; the caller says how many are left when the endpoint is down.
pub fn flush_queue(
    store: &Store,
    vars: &BTreeMap<String, String>,
    reporter: &dyn Reporter,
) -> crate::Result<(String, Delivery)> {
    let no_url = || {
        crate::ExecError::Usage(
            "this store sends OpenLineage events to no endpoint: set url in [openlineage] in .repro/repro.toml".into(),
        )
    };
    let emitter = Emitter::new(store, vars, reporter).ok_or_else(no_url)?;
    let url = emitter.section.post_url().ok_or_else(no_url)?;
    Ok((url, emitter.flush()))
}

/// ABORT for runs whose repro died before recording their end (`kill -9`, a crash, a lost
/// machine), once `repro fsck` has found them: the catalogue saw their START, and without an
/// end they would stay running there for ever. Sent at the time they were found.
pub fn abort_interrupted(
    store: &Store,
    runs: &[repro_core::RunId],
    vars: &BTreeMap<String, String>,
    reporter: &dyn Reporter,
) {
    if runs.is_empty() {
        return;
    }
    let Some(emitter) = Emitter::new(store, vars, reporter) else { return };
    let now = repro_util::clock::rfc3339(repro_util::clock::now_ms());
    for id in runs {
        let run = match store.meta.runs().get(id) {
            Ok(run) => run,
            Err(e) => {
                reporter.warn(&format!("no OpenLineage ABORT for run {}: {e}", id.short()));
                continue;
            }
        };
        let mut event = ol::end_event(&run.record, emitter.namespace());
        if run.record.ended_at.is_none() {
            event.event_time = now.clone();
        }
        emitter.emit(&event, reporter);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Says every message, so a test can read what the user would.
    #[derive(Default)]
    struct Said(Mutex<Vec<String>>);
    impl Reporter for Said {
        fn message(&self, text: &str) {
            self.0.lock().expect("lock").push(text.to_string());
        }
        fn progress(&self) -> &dyn crate::Progress {
            &repro_core::progress::NoProgress
        }
    }

    /// An endpoint answering each POST with the next status of `statuses`, keeping the bodies.
    fn endpoint(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for (status, conn) in statuses.into_iter().zip(listener.incoming()) {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                kept.lock().expect("lock").push(String::from_utf8_lossy(&body).into_owned());
                let answer = if status == 400 { "{\"message\":\"bad event\"}" } else { "" };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        (url, bodies)
    }

    fn emitter(dir: &Path, url: &str) -> Emitter {
        let mut store = Store::init(dir).expect("store");
        store.config.openlineage = Some(toml::from_str(&format!("url = \"{url}\"\ntimeout = 2\n")).expect("section"));
        Emitter::new(&store, &BTreeMap::new(), &crate::Quiet).expect("configured")
    }

    fn event(kind: ol::EventType) -> RunEvent {
        let mut e = ol::failed_event(
            &repro_core::record::RunRecord::tracking_only(
                repro_core::RunId::from_bytes([7; 16]),
                None,
                "u".into(),
                "h".into(),
                "2026-01-01T00:00:00.000Z".into(),
            ),
            "repro",
            "2026-01-01T00:00:00.000Z",
            "x",
        );
        e.event_type = kind;
        e
    }

    #[test]
    fn a_failing_endpoint_queues_and_a_malformed_event_is_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 503 for START: queued. Then 400 for the queued START: set aside, and END is sent.
        let (url, bodies) = endpoint(vec![503, 400, 200]);
        let e = emitter(dir.path(), &url);
        let said = Said::default();
        e.emit(&event(ol::EventType::Start), &said);
        assert_eq!(queued_files(&e.queue_dir()).len(), 1);
        let line = said.0.lock().expect("lock").join("\n");
        assert!(
            line.contains("unreachable (HTTP 503); 1 event(s) queued") && line.contains("when the run ends"),
            "{line}"
        );

        let said = Said::default();
        e.emit(&event(ol::EventType::Complete), &said);
        assert!(queued_files(&e.queue_dir()).is_empty());
        let rejected: Vec<_> =
            fs::read_dir(dir.path().join(".repro/openlineage/rejected")).expect("rejected").collect();
        assert_eq!(rejected.len(), 1);
        let line = said.0.lock().expect("lock").join("\n");
        assert!(line.contains("refused an event (HTTP 400: {\"message\":\"bad event\"})"), "{line}");
        let bodies = bodies.lock().expect("lock");
        assert_eq!(bodies.len(), 3);
        assert!(
            bodies[0].contains("\"START\"") && bodies[1].contains("\"START\"") && bodies[2].contains("\"COMPLETE\"")
        );
    }

    #[test]
    fn the_queue_is_sent_oldest_first_and_kept_from_the_first_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Nothing listens: both events wait.
        let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let e = emitter(dir.path(), &url);
        e.emit(&event(ol::EventType::Start), &crate::Quiet);
        e.emit(&event(ol::EventType::Complete), &crate::Quiet);
        assert_eq!(queued_files(&e.queue_dir()).len(), 2);
        // The endpoint takes one event, then fails: the second stays, the first is gone.
        let (url2, bodies) = endpoint(vec![201, 500]);
        let mut e = e;
        e.section.url = Some(url2);
        let d = e.flush();
        assert_eq!((d.sent, d.queued), (1, 1), "{d:?}");
        assert_eq!(d.unreachable.as_deref(), Some("HTTP 500"));
        assert!(bodies.lock().expect("lock")[0].contains("\"START\""));
        let left = fs::read_to_string(&queued_files(&e.queue_dir())[0]).expect("queued");
        assert!(left.contains("\"COMPLETE\""));
        // No temp file is left behind.
        assert_eq!(fs::read_dir(dir.path().join(".repro/tmp")).map(|d| d.count()).unwrap_or(0), 0);
    }
}
