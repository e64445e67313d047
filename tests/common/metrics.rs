//! A service's `GET /metrics` (Prometheus text), read so that a test can wait for a
//! gauge or a counter (requests in flight, connections parked) instead of sleeping.

use super::Http;

/// One scrape of `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    text: String,
}

impl Metrics {
    /// A scrape's body.
    pub fn parse(text: &str) -> Metrics {
        Metrics {
            text: text.to_string(),
        }
    }

    /// `GET {base}/metrics`.
    #[track_caller]
    pub fn scrape(http: &Http, base: &str) -> Metrics {
        let r = http.get(&format!("{base}/metrics"));
        assert_eq!(r.status, 200, "GET /metrics: {r:?}");
        Metrics::parse(&r.text)
    }

    /// The sum of the integer samples of `name` whose labels include every one of
    /// `labels`, each written as in the text (`route="/products"`); 0 when none does.
    pub fn sum(&self, name: &str, labels: &[&str]) -> u64 {
        self.samples(name, labels).sum()
    }

    /// The value of a gauge or counter that has one sample (the server's own, such as
    /// `toystore_http_open_connections`); fails the test when it has none or several.
    #[track_caller]
    pub fn value(&self, name: &str) -> u64 {
        let values: Vec<u64> = self.samples(name, &[]).collect();
        match values[..] {
            [value] => value,
            _ => panic!("{name}: samples {values:?} in\n{}", self.text),
        }
    }

    fn samples<'a>(&'a self, name: &'a str, labels: &'a [&str]) -> impl Iterator<Item = u64> + 'a {
        self.text.lines().filter_map(move |line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let found = match rest {
                "" => "",
                _ => rest.strip_prefix('{')?.strip_suffix('}')?,
            };
            let matches = labels.iter().all(|l| found.split(',').any(|f| f == *l));
            matches.then(|| value.parse::<u64>().ok()).flatten()
        })
    }
}
