//! Reading a response body with a size cap (SECURITY.md rule 23).
//!
//! Every body the gateway reads from an identity provider or BigCommerce goes through
//! [`read_capped`]: a declared `Content-Length` over the cap is refused before a byte of the
//! body is read, and a chunked (or lying) body is counted while it streams in and dropped
//! the moment it passes the cap. So a hostile or broken server can make the gateway read at
//! most the cap, never buffer a gigabyte. (reqwest is built without decompression, so the
//! bytes counted are the bytes kept.)

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the response body is larger than {} KiB", limit / 1024)]
    TooLarge { limit: usize },
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// The whole body of `response`, or [`BodyError::TooLarge`] once it passes `limit` bytes.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let declared = response.content_length();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
pub(crate) mod test_server {
    //! Servers that send too much, for the tests of every caller of [`super::read_capped`].

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Answers every request on its own connection with 200, JSON, and a body that never
    /// ends (chunked, 64 KiB a chunk). Returns the base URL and the bytes of body written
    /// so far: a client that stops reading makes the writes stop once the socket buffers
    /// are full.
    pub async fn endless_json() -> (String, Arc<AtomicUsize>) {
        serve(|mut socket, sent: Arc<AtomicUsize>| async move {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = [b' '; 64 * 1024];
            let frame = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk.to_vec(),
                b"\r\n".to_vec(),
            ]
            .concat();
            // Bounded so a client that does buffer everything still ends (at 1 GiB).
            for _ in 0..(16 * 1024) {
                if socket.write_all(&frame).await.is_err() {
                    return;
                }
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        })
        .await
    }

    /// Answers with `Content-Length: 1 GiB` and then sends nothing: a client that checks the
    /// declared length answers at once; one that starts reading waits for its timeout.
    pub async fn declares_a_gigabyte() -> (String, Arc<AtomicUsize>) {
        serve(|mut socket, _sent| async move {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        })
        .await
    }

    async fn serve<F, Fut>(answer: F) -> (String, Arc<AtomicUsize>)
    where
        F: Fn(tokio::net::TcpStream, Arc<AtomicUsize>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                // Read the request head (small, one read is enough for these tests).
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                tokio::spawn(answer(socket, counter.clone()));
            }
        });
        (base, sent)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::*;

    const MIB: usize = 1024 * 1024;

    #[tokio::test]
    async fn an_endless_body_is_cut_at_the_cap() {
        let (base, sent) = test_server::endless_json().await;
        let http = crate::http_client(Duration::from_secs(10)).unwrap();
        let response = http.get(&base).send().await.unwrap();
        let result = read_capped(response, MIB).await;
        assert!(matches!(result, Err(BodyError::TooLarge { limit }) if limit == MIB));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // What the server managed to write: the cap plus what the socket buffers held.
        let written = sent.load(Ordering::SeqCst);
        assert!(written < 32 * MIB, "{written} bytes written");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_before_reading() {
        let (base, _) = test_server::declares_a_gigabyte().await;
        let http = crate::http_client(Duration::from_secs(10)).unwrap();
        let started = Instant::now();
        let response = http.get(&base).send().await.unwrap();
        let result = read_capped(response, MIB).await;
        assert!(matches!(result, Err(BodyError::TooLarge { .. })));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "did not wait for the body"
        );
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_read_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "x".repeat(1000) }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let http = crate::http_client(Duration::from_secs(10)).unwrap();
        let response = http.get(&base).send().await.unwrap();
        assert_eq!(read_capped(response, 1000).await.unwrap().len(), 1000);
        let response = http.get(&base).send().await.unwrap();
        assert!(matches!(
            read_capped(response, 999).await,
            Err(BodyError::TooLarge { .. })
        ));
    }
}
