//! The image a request starts from (`image_url`): a `data:` URI decoded, or an http(s) URL
//! fetched within a size limit and a timeout — and, unless the operator allows it, never from a
//! loopback, private or link-local address (the worker must not become a way into internal
//! services). Either way the bytes must be a PNG, JPEG, WebP or GIF image.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use crate::error::MediaError;
use crate::http;
use crate::images::{InputImage, sniff};

/// Fetches input images.
#[derive(Debug, Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    max_bytes: usize,
    allow_private: bool,
}

fn bad(message: impl Into<String>) -> MediaError {
    MediaError::BadInput(message.into())
}

/// Whether `ip` is one the public internet does not reach.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

impl Fetcher {
    /// A fetcher of images up to `max_bytes`; `allow_private` lets URLs reach internal addresses.
    pub fn new(max_bytes: usize, allow_private: bool) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                // A redirect could lead to an internal address after the check.
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            max_bytes,
            allow_private,
        })
    }

    /// The image at `url`, checked.
    pub async fn fetch(&self, url: &str) -> Result<InputImage, MediaError> {
        let bytes = if url
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
        {
            self.data_uri(url)?
        } else {
            self.download(url).await?
        };
        let (mime, _, width, height) =
            sniff(&bytes).ok_or_else(|| bad("image_url is not a PNG, JPEG, WebP or GIF image"))?;
        Ok(InputImage {
            bytes,
            mime,
            width,
            height,
        })
    }

    fn data_uri(&self, url: &str) -> Result<Bytes, MediaError> {
        let (head, data) = url
            .split_once(',')
            .ok_or_else(|| bad("image_url is a data: URI without data"))?;
        if !head.to_ascii_lowercase().ends_with(";base64") {
            return Err(bad(
                "image_url must be a base64 data: URI (data:image/png;base64,...)",
            ));
        }
        let data: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = STANDARD
            .decode(data)
            .map_err(|_| bad("image_url's data is not valid base64"))?;
        if bytes.len() > self.max_bytes {
            return Err(bad(format!(
                "image_url's image is larger than {} bytes",
                self.max_bytes
            )));
        }
        Ok(Bytes::from(bytes))
    }

    async fn download(&self, url: &str) -> Result<Bytes, MediaError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| bad("image_url is not a valid URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("image_url must be an http(s) URL or a data: URI"));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("image_url has no host"))?
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        if !self.allow_private {
            let addrs: Vec<_> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
                .await
                .map_err(|_| bad(format!("image_url's host {host} cannot be resolved")))?
                .collect();
            if addrs.is_empty() || addrs.iter().any(|a| is_private(a.ip())) {
                return Err(bad(format!(
                    "image_url's host {host} is an internal address, which this service does not fetch"
                )));
            }
        }
        let response = self.http.get(parsed).send().await.map_err(|e| {
            bad(if e.is_timeout() {
                "image_url did not answer in time".to_owned()
            } else {
                format!("image_url cannot be reached ({host})")
            })
        })?;
        if !response.status().is_success() {
            return Err(bad(format!(
                "image_url answered HTTP {}",
                response.status().as_u16()
            )));
        }
        http::body_limited(response, self.max_bytes)
            .await
            .map_err(|e| match e {
                MediaError::TooLarge(_) => bad(format!(
                    "image_url's image is larger than {} bytes",
                    self.max_bytes
                )),
                _ => bad("image_url's download broke off"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_told() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "100.64.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_data_uri_must_hold_an_image() {
        let f = Fetcher::new(1 << 20, false).unwrap();
        let png = crate::images::dummy::placeholder_png(20, 10, b"x").unwrap();
        let uri = format!("data:image/png;base64,{}", STANDARD.encode(&png));
        let image = f.fetch(&uri).await.unwrap();
        assert_eq!(
            (image.width, image.height, image.mime),
            (20, 10, "image/png")
        );
        let e = f
            .fetch("data:text/plain;base64,aGVsbG8=")
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_image");
        let e = f.fetch("http://127.0.0.1:9/x.png").await.unwrap_err();
        assert!(e.to_string().contains("internal address"), "{e}");
    }
}
