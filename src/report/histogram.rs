//! Full HDR histograms inside the JSON report: the standard V2 compressed encoding
//! (HdrHistogram's "V2 deflate" format, as in its log files), in base64. A report then
//! holds everything needed to recompute any percentile later or to add runs exactly.

use anyhow::Context;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// The value of the report's `histogram_encoding` field.
pub const ENCODING: &str = "hdrhistogram-v2-deflate+base64; values in microseconds";

/// Encodes a histogram. Serializing into memory cannot fail for a valid histogram; if it
/// ever did, the field is left empty and [`decode`] reports it.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// Decodes a histogram written by [`encode`] (or any HdrHistogram V2 / V2-deflate, base64).
pub fn decode(s: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .context("the histogram is not valid base64")?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("the histogram does not decode: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        let mut h = crate::samples::new_histogram();
        for v in [1u64, 20_000, 20_150, 60_000_000, 3] {
            crate::samples::record(&mut h, v);
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        let empty = crate::samples::new_histogram();
        assert_eq!(decode(&encode(&empty)).unwrap().len(), 0);
        assert!(decode("not base64!").is_err());
        assert!(decode("AAAA").is_err());
    }
}
