//! The front door: health, reserved prefixes, request ids, interrupted uploads.

use std::io::Write as _;

use crate::common::Gateway;

#[tokio::test]
async fn health_reserved_routes_and_request_ids() {
    for gw in Gateway::each().await {
        let health = gw
            .http
            .get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(
            gw.http
                .get(format!("{}/readyz", gw.url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        for path in ["/api/v1/x", "/s/token", "/ui/", "/metrics"] {
            assert_eq!(
                gw.http
                    .get(format!("{}{path}", gw.url))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                404,
                "{path}"
            );
        }
        let generated = health.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            health.headers()["x-amz-request-id"].to_str().unwrap(),
            generated
        );
        assert_eq!(generated.len(), 36, "a UUID");
        let echoed = gw
            .http
            .get(format!("{}/healthz", gw.url))
            .header("x-request-id", "trace-42")
            .send()
            .await
            .unwrap();
        assert_eq!(echoed.headers()["x-request-id"], "trace-42");
        let refused = gw
            .http
            .get(format!("{}/healthz", gw.url))
            .header("x-request-id", "<script>")
            .send()
            .await
            .unwrap();
        assert_ne!(refused.headers()["x-request-id"], "<script>");
        gw.stop().await;
    }
}

#[tokio::test]
async fn an_interrupted_upload_leaves_nothing() {
    for gw in Gateway::each().await {
        gw.dav("MKCOL", "/dav/up", &gw.alice).send().await.unwrap();
        let addr = gw.url.trim_start_matches("http://").to_owned();
        let alice = format!("{}:{}", gw.alice.name, gw.alice.password);
        let auth = base64_encode(alice.as_bytes());
        // Announce a megabyte, send a kilobyte, hang up.
        std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            write!(stream, "PUT /dav/up/partial.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: 1048576\r\n\r\n").unwrap();
            stream.write_all(&[1u8; 1024]).unwrap();
            stream.flush().unwrap();
        })
        .join()
        .unwrap();
        // The server notices the closed connection and aborts the upload.
        let mut clean = false;
        for _ in 0..100 {
            let report = gw.drive.fsck(false).await.unwrap();
            if report.temp_files == 0 && report.blob_files == 0 {
                clean = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(clean, "the partial upload was not cleaned up");
        assert_eq!(
            gw.dav("GET", "/dav/up/partial.bin", &gw.alice)
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        gw.stop().await;
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn shutdown_lets_an_upload_in_flight_finish() {
    for mut gw in Gateway::each().await {
        gw.dav("MKCOL", "/dav/slow", &gw.alice)
            .send()
            .await
            .unwrap();
        // Ten chunks, 100 ms apart: the upload is still streaming when shutdown starts.
        let chunks = futures::stream::unfold(0u8, |i| async move {
            if i == 10 {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            Some((Ok::<_, std::io::Error>(vec![i; 1000]), i + 1))
        });
        let upload = gw
            .dav("PUT", "/dav/slow/file.bin", &gw.alice)
            .body(reqwest::Body::wrap_stream(chunks))
            .send();
        let upload = tokio::spawn(upload);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let running = gw.take_running();
        let stopped = tokio::spawn(running.stop());
        let response = upload.await.unwrap().unwrap();
        assert_eq!(response.status(), 201, "the in-flight upload completed");
        stopped.await.unwrap().unwrap();
        let ctx = crate::dav::ctx(&gw).await;
        let entry = gw
            .drive
            .stat(
                &ctx,
                &portico_drive::NodePath::parse("slow/file.bin").unwrap(),
                portico_drive::Kind::File,
            )
            .await
            .unwrap();
        assert_eq!(entry.size, 10_000);
        gw.stop().await;
    }
}

#[tokio::test]
async fn maintenance_aborts_abandoned_uploads() {
    use aws_sdk_s3::primitives::ByteStream;
    for gw in Gateway::each().await {
        let s3 = &gw.alice.s3;
        s3.create_bucket().bucket("abandoned").send().await.unwrap();
        let upload = s3
            .create_multipart_upload()
            .bucket("abandoned")
            .key("big")
            .send()
            .await
            .unwrap();
        s3.upload_part()
            .bucket("abandoned")
            .key("big")
            .upload_id(upload.upload_id().unwrap())
            .part_number(1)
            .body(ByteStream::from(vec![5u8; 4096]))
            .send()
            .await
            .unwrap();
        let schedule = |hours: u64| portico_gateway::maintenance::Schedule {
            every: std::time::Duration::from_secs(3600),
            multipart_expiry: std::time::Duration::from_secs(hours * 3600),
        };
        let young = portico_gateway::maintenance::run_once(&gw.drive, schedule(1))
            .await
            .unwrap();
        assert_eq!(young.0, 0, "a fresh upload is kept");
        let (expired, _) = portico_gateway::maintenance::run_once(&gw.drive, schedule(0))
            .await
            .unwrap();
        assert_eq!(expired, 1);
        assert!(
            s3.list_multipart_uploads()
                .bucket("abandoned")
                .send()
                .await
                .unwrap()
                .uploads()
                .is_empty()
        );
        let report = gw.drive.fsck(false).await.unwrap();
        assert_eq!(
            (report.blob_files, report.blobs_in_catalog),
            (0, 0),
            "the part's blob is gone"
        );
        assert_eq!(
            gw.drive
                .usage(&crate::dav::ctx(&gw).await)
                .await
                .unwrap()
                .used_bytes,
            0
        );
        gw.stop().await;
    }
}
