//! `--scrape URL`: a service's own figures from its Prometheus text endpoint
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, the
//! standard process collector's names in every official client library). Parsed with the
//! `prometheus-parse` crate rather than by hand: the format has comments, types, labels,
//! escapes and timestamps that a line splitter gets subtly wrong.

use std::sync::Arc;
use std::time::Duration;

/// One scrape's figures; each is `None` when the endpoint does not export it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScrapeSample {
    pub cpu_s: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub open_fds: Option<f64>,
}

/// Reads the three process metrics from Prometheus text. Several series of one name
/// (labels) are added up.
pub fn parse(text: &str) -> Result<ScrapeSample, String> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines)
        .map_err(|e| format!("not Prometheus text format: {e}"))?;
    let value = |name: &str| {
        let mut found = None;
        for s in scrape.samples.iter().filter(|s| s.metric == name) {
            let v = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => continue,
            };
            found = Some(found.unwrap_or(0.0) + v);
        }
        found
    };
    Ok(ScrapeSample {
        cpu_s: value("process_cpu_seconds_total"),
        rss_bytes: value("process_resident_memory_bytes"),
        open_fds: value("process_open_fds"),
    })
}

/// The client that scrapes: no proxy, and for an `https://` endpoint the run's TLS config
/// (without one reqwest here trusts no certificate).
pub fn client(tls: Option<&Arc<rustls::ClientConfig>>) -> reqwest::Result<reqwest::Client> {
    crate::tls::reqwest_tls(reqwest::Client::builder(), tls)
        .no_proxy()
        .build()
}

/// Fetches and parses `url` once.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<ScrapeSample, String> {
    let resp = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("could not scrape '{url}': {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("scraping '{url}' answered {}", resp.status()));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| format!("could not read '{url}': {e}"))?;
    parse(&text).map_err(|e| format!("'{url}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_process_collector() {
        let text = "# HELP process_cpu_seconds_total Total user and system CPU time.\n\
# TYPE process_cpu_seconds_total counter\n\
process_cpu_seconds_total 12.5\n\
# TYPE process_resident_memory_bytes gauge\n\
process_resident_memory_bytes 1.048576e+07\n\
process_open_fds 42\n\
http_requests_total{code=\"200\"} 7\n";
        let s = parse(text).unwrap();
        assert_eq!(s.cpu_s, Some(12.5));
        assert_eq!(s.rss_bytes, Some(10_485_760.0));
        assert_eq!(s.open_fds, Some(42.0));
        assert_eq!(parse("up 1\n").unwrap(), ScrapeSample::default());
    }
}
