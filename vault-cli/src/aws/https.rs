//! The one HTTPS stack breakglass reaches AWS with: the SDK's current client (hyper 1, rustls
//! 0.23 with the platform's trust store), with ring as the TLS cryptography, the library the
//! vault already uses. Every SDK client is built with it; the console sign-in request to the
//! federation endpoint, which is no SDK operation, goes through the same connector. Plain
//! `http://` endpoints (a local endpoint named by `AWS_ENDPOINT_URL`) work as well.

use std::fmt;
use std::time::Duration;

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpClient};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::byte_stream::ByteStream;

/// rustls on ring: the SDK's own default would add aws-lc-rs as a second cryptography library.
fn tls_provider() -> tls::Provider {
    tls::Provider::Rustls(CryptoMode::Ring)
}

/// The HTTP client every SDK client is configured with.
pub fn sdk_http_client() -> SharedHttpClient {
    Builder::new().tls_provider(tls_provider()).build_https()
}

/// Why a GET outside the SDK got no usable answer.
///
/// Never holds the URL or the server's words: a federation request carries the session's
/// credentials in its query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetError {
    /// The URL is not one an HTTP client can send to.
    BadUrl,
    /// No complete answer within the time allowed.
    TimedOut,
    /// No connection (name resolution, refused, TLS handshake, certificate).
    Unreachable,
    /// An answer, but not a success.
    Status(u16),
    /// A success whose body could not be read as UTF-8 text.
    Unreadable,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadUrl => f.write_str("not a usable URL"),
            Self::TimedOut => f.write_str("no answer in time"),
            Self::Unreachable => f.write_str("cannot reach it"),
            Self::Status(code) => write!(f, "HTTP {code}"),
            Self::Unreadable => f.write_str("unreadable answer"),
        }
    }
}

impl std::error::Error for GetError {}

/// GETs `url` through the SDK's HTTPS connector and returns the body as text; `timeout` bounds
/// the whole exchange.
pub async fn get_text(url: &str, timeout: Duration) -> Result<String, GetError> {
    let request = HttpRequest::get(url).map_err(|_| GetError::BadUrl)?;
    let connector = Connector::builder().tls_provider(tls_provider()).build();
    let exchange = async {
        let response = connector.call(request).await.map_err(|error| {
            if error.is_timeout() {
                GetError::TimedOut
            } else {
                GetError::Unreachable
            }
        })?;
        if !response.status().is_success() {
            return Err(GetError::Status(response.status().as_u16()));
        }
        let body = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|_| GetError::Unreadable)?
            .into_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| GetError::Unreadable)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| GetError::TimedOut)?
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    /// A one-connection server on 127.0.0.1: answers `response` and hands back the first bytes
    /// the client sent.
    fn serve_once(response: &'static [u8]) -> (String, thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut received = vec![0; 512];
            let n = stream.read(&mut received).expect("read");
            received.truncate(n);
            let _ = stream.write_all(response);
            received
        });
        (format!("127.0.0.1:{port}"), server)
    }

    #[tokio::test]
    async fn a_plain_get_returns_the_body_of_a_success() {
        let (address, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}",
        );
        let body = get_text(
            &format!("http://{address}/federation?x=1"),
            Duration::from_secs(10),
        )
        .await
        .expect("GET");
        assert_eq!(body, "{\"ok\":true}");
        let request = String::from_utf8(server.join().expect("server")).expect("text");
        assert!(
            request.starts_with("GET /federation?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_reported_by_its_status_only() {
        let (address, server) = serve_once(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret",
        );
        let error = get_text(
            &format!("http://{address}/f?Session=s3cr3t"),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        server.join().expect("server");
        assert_eq!(error, GetError::Status(400));
        assert_eq!(error.to_string(), "HTTP 400");
    }

    /// An https URL is never sent in clear text: the server sees a TLS handshake, not the
    /// request line (whose query carries a session's credentials), and a peer that cannot
    /// complete the handshake is unreachable.
    #[tokio::test]
    async fn an_https_url_opens_with_a_tls_handshake_never_the_request_in_clear() {
        let (address, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let error = get_text(
            &format!("https://{address}/f?Session=s3cr3t"),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        let received = server.join().expect("server");
        assert_eq!(
            received.first(),
            Some(&0x16),
            "a TLS handshake record opens the connection"
        );
        assert!(!String::from_utf8_lossy(&received).contains("s3cr3t"));
        assert_eq!(error, GetError::Unreachable);
    }

    #[tokio::test]
    async fn no_answer_within_the_time_allowed_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        // The connection is accepted by the kernel's backlog; nothing ever answers.
        let error = get_text(&format!("http://{address}/f"), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(error, GetError::TimedOut);
        drop(listener);
    }

    #[tokio::test]
    async fn a_url_a_client_cannot_send_to_is_refused_before_any_connection() {
        assert_eq!(
            get_text("not a url", Duration::from_secs(1))
                .await
                .unwrap_err(),
            GetError::BadUrl
        );
    }
}
