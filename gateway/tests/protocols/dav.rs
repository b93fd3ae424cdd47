//! WebDAV through raw HTTP requests, as clients send them.

use crate::common::{Gateway, xml_values};

const PROPFIND_ALL: &str =
    r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;

#[tokio::test]
async fn class_one_methods() {
    for gw in Gateway::each().await {
        let alice = &gw.alice;
        // OPTIONS answers without credentials; everything else asks for them.
        let options = gw
            .http
            .request(reqwest::Method::OPTIONS, format!("{}/dav/", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(options.status(), 200);
        assert_eq!(options.headers()["dav"], "1, 2");
        assert_eq!(options.headers()["ms-author-via"], "DAV");
        let anonymous = gw
            .http
            .get(format!("{}/dav/", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
        assert!(
            anonymous.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm=\"Portico\"")
        );

        assert_eq!(
            gw.dav("MKCOL", "/dav/docs", alice)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        assert_eq!(
            gw.dav("MKCOL", "/dav/docs", alice)
                .send()
                .await
                .unwrap()
                .status(),
            405
        );
        assert_eq!(
            gw.dav("MKCOL", "/dav/no/parent", alice)
                .send()
                .await
                .unwrap()
                .status(),
            409
        );

        let put = gw
            .dav("PUT", "/dav/docs/hello%20world.txt", alice)
            .body("hello world")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
        assert_eq!(
            put.headers()["etag"],
            "\"5eb63bbbe01eeed093cb22bb8f5acdc3\""
        );
        let replaced = gw
            .dav("PUT", "/dav/docs/hello%20world.txt", alice)
            .body("hello again")
            .send()
            .await
            .unwrap();
        assert_eq!(replaced.status(), 204);
        assert_eq!(
            gw.dav("PUT", "/dav/missing/x.txt", alice)
                .body("x")
                .send()
                .await
                .unwrap()
                .status(),
            409
        );

        // Chunked transfer without Content-Length, as Finder sends it.
        let chunks: Vec<Result<&'static [u8], std::io::Error>> =
            vec![Ok(b"chunk one, "), Ok(b"chunk two")];
        let streamed = gw
            .dav("PUT", "/dav/docs/chunked.bin", alice)
            .header("x-expected-entity-length", "20")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        assert_eq!(streamed.status(), 201);
        let get = gw
            .dav("GET", "/dav/docs/chunked.bin", alice)
            .send()
            .await
            .unwrap();
        assert_eq!(get.text().await.unwrap(), "chunk one, chunk two");

        let ranged = gw
            .dav("GET", "/dav/docs/hello%20world.txt", alice)
            .header("range", "bytes=6-")
            .send()
            .await
            .unwrap();
        assert_eq!(ranged.status(), 206);
        assert_eq!(ranged.headers()["content-range"], "bytes 6-10/11");
        assert_eq!(ranged.text().await.unwrap(), "again");
        let unsatisfiable = gw
            .dav("GET", "/dav/docs/hello%20world.txt", alice)
            .header("range", "bytes=99-")
            .send()
            .await
            .unwrap();
        assert_eq!(unsatisfiable.status(), 416);
        assert_eq!(unsatisfiable.headers()["content-range"], "bytes */11");
        let head = gw
            .dav("HEAD", "/dav/docs/hello%20world.txt", alice)
            .send()
            .await
            .unwrap();
        assert_eq!(head.headers()["content-length"], "11");

        let copy = gw
            .dav("COPY", "/dav/docs", alice)
            .header("destination", format!("{}/dav/copy", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(copy.status(), 201);
        let exists = gw
            .dav("COPY", "/dav/docs", alice)
            .header("destination", "/dav/copy")
            .header("overwrite", "F")
            .send()
            .await
            .unwrap();
        assert_eq!(exists.status(), 412);
        let moved = gw
            .dav("MOVE", "/dav/copy/chunked.bin", alice)
            .header("destination", "/dav/docs/renamed.bin")
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), 201);
        let over = gw
            .dav("MOVE", "/dav/docs/renamed.bin", alice)
            .header("destination", "/dav/docs/chunked.bin")
            .send()
            .await
            .unwrap();
        assert_eq!(over.status(), 204, "overwrite by default");
        let elsewhere = gw
            .dav("MOVE", "/dav/docs", alice)
            .header("destination", "http://other/elsewhere/x")
            .send()
            .await
            .unwrap();
        assert_eq!(elsewhere.status(), 502);

        let depth0 = gw
            .dav("PROPFIND", "/dav/docs/hello%20world.txt", alice)
            .header("depth", "0")
            .body(PROPFIND_ALL)
            .send()
            .await
            .unwrap();
        assert_eq!(depth0.status(), 207);
        let xml = depth0.text().await.unwrap();
        assert_eq!(xml_values(&xml, "href"), ["/dav/docs/hello%20world.txt"]);
        assert_eq!(xml_values(&xml, "getcontentlength"), ["11"]);
        let depth1 = gw
            .dav("PROPFIND", "/dav/docs", alice)
            .header("depth", "1")
            .send()
            .await
            .unwrap();
        let xml = depth1.text().await.unwrap();
        assert_eq!(
            xml_values(&xml, "href"),
            [
                "/dav/docs/",
                "/dav/docs/chunked.bin",
                "/dav/docs/hello%20world.txt"
            ]
        );
        let infinity = gw
            .dav("PROPFIND", "/dav/", alice)
            .header("depth", "infinity")
            .send()
            .await
            .unwrap();
        assert_eq!(infinity.status(), 403);
        assert!(
            infinity
                .text()
                .await
                .unwrap()
                .contains("propfind-finite-depth")
        );
        let some = gw
            .dav("PROPFIND", "/dav/docs", alice)
            .header("depth", "0")
            .body(r#"<D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><D:resourcetype/><Z:color/></D:prop></D:propfind>"#)
            .send()
            .await
            .unwrap();
        let xml = some.text().await.unwrap();
        assert!(
            xml.contains("<D:collection/>")
                && xml.contains("<X:color xmlns:X=\"urn:z\"/>")
                && xml.contains("404 Not Found"),
            "{xml}"
        );
        let broken = gw
            .dav("PROPFIND", "/dav/docs", alice)
            .header("depth", "0")
            .body("<propfind")
            .send()
            .await
            .unwrap();
        assert_eq!(broken.status(), 400);

        assert_eq!(
            gw.dav("DELETE", "/dav/docs", alice)
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
        assert_eq!(
            gw.dav("GET", "/dav/docs/hello%20world.txt", alice)
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let trash = gw.drive.list_trash(&ctx(&gw).await).await.unwrap();
        let docs: Vec<_> = trash
            .iter()
            .filter(|entry| entry.path.file_key() == "docs")
            .collect();
        assert_eq!(docs.len(), 1, "the folder went to the trash as one entry");
        assert!(
            !trash
                .iter()
                .any(|entry| entry.path.file_key() == "docs/hello world.txt"),
            "not one entry per file"
        );
        for bad in ["/dav/a%2Fb", "/dav/a%00b", "/dav/a//b"] {
            assert_eq!(
                gw.dav("GET", bad, alice).send().await.unwrap().status(),
                400,
                "{bad}"
            );
        }
        gw.stop().await;
    }
}

pub async fn ctx(gw: &Gateway) -> portico_drive::Ctx {
    let principal = gw
        .drive
        .authenticate_password(&gw.alice.name, &gw.alice.password)
        .await
        .unwrap();
    portico_drive::Ctx::new(principal, portico_drive::Protocol::Cli, "test")
}

#[tokio::test]
async fn names_are_byte_exact_and_folders_stream_in_pages() {
    for gw in Gateway::each().await {
        let alice = &gw.alice;
        gw.dav("MKCOL", "/dav/names", alice).send().await.unwrap();
        let names = [
            "caf\u{e9}",
            "cafe\u{301}",
            "a+b",
            "50% off",
            "x#y",
            "q&a;=",
            "\u{1f600}",
        ];
        for name in names {
            let href = format!("/dav/names/{}", encode(name));
            assert_eq!(
                gw.dav("PUT", &href, alice)
                    .body(name.to_owned())
                    .send()
                    .await
                    .unwrap()
                    .status(),
                201,
                "{name}"
            );
        }
        for name in names {
            let got = gw
                .dav("GET", &format!("/dav/names/{}", encode(name)), alice)
                .send()
                .await
                .unwrap();
            assert_eq!(got.text().await.unwrap(), name, "NFC and NFD stay distinct");
        }
        // More children than one catalog page: the listing streams page after page.
        gw.dav("MKCOL", "/dav/many", alice).send().await.unwrap();
        let ctx = ctx(&gw).await;
        let folder = portico_drive::NodePath::parse("many").unwrap();
        for i in 0..1203 {
            let path = folder.join(&format!("f{i:05}")).unwrap();
            let options = portico_drive::PutOptions::new(
                portico_drive::Kind::File,
                portico_drive::Parents::MustExist,
            );
            gw.drive
                .put(&ctx, &path, futures::stream::empty(), options)
                .await
                .unwrap();
        }
        let listing = gw
            .dav("PROPFIND", "/dav/many/", alice)
            .header("depth", "1")
            .send()
            .await
            .unwrap();
        let xml = listing.text().await.unwrap();
        let hrefs = xml_values(&xml, "href");
        assert_eq!(hrefs.len(), 1204);
        assert_eq!(hrefs[1], "/dav/many/f00000");
        assert_eq!(hrefs[1203], "/dav/many/f01202");
        assert!(xml.trim_end().ends_with("</D:multistatus>"));
        gw.stop().await;
    }
}

fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn wrong_credentials_do_not_reveal_accounts() {
    for gw in Gateway::each().await {
        let wrong = gw
            .http
            .get(format!("{}/dav/", gw.url))
            .basic_auth("alice", Some("wrong"))
            .send()
            .await
            .unwrap();
        let unknown = gw
            .http
            .get(format!("{}/dav/", gw.url))
            .basic_auth("mallory", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (wrong.status(), unknown.status()),
            (
                reqwest::StatusCode::UNAUTHORIZED,
                reqwest::StatusCode::UNAUTHORIZED
            )
        );
        assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap());
        gw.stop().await;
    }
}

#[tokio::test]
async fn app_passwords_bearer_tokens_and_throttling() {
    for gw in Gateway::each().await {
        let get = |user: &str, secret: &str| {
            gw.http
                .get(format!("{}/dav/", gw.url))
                .basic_auth(user, Some(secret))
                .send()
        };
        let bearer = |token: &str| {
            gw.http
                .get(format!("{}/dav/", gw.url))
                .bearer_auth(token)
                .send()
        };
        let created = gw
            .drive
            .create_app_password(&gw.alice.name, "laptop")
            .await
            .unwrap();
        assert!(created.password.starts_with("pap_"));
        assert_eq!(
            get(&gw.alice.name, &created.password)
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(bearer(&created.password).await.unwrap().status(), 200);
        // Another account's name with alice's app password is refused.
        assert_eq!(
            get(&gw.bob.name, &created.password).await.unwrap().status(),
            401
        );
        assert_eq!(bearer("pap_not-a-real-one").await.unwrap().status(), 401);
        let listed = gw.drive.list_app_passwords(&gw.alice.name).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].label, "laptop");
        gw.drive
            .revoke_app_password(&gw.alice.name, created.id)
            .await
            .unwrap();
        assert_eq!(bearer(&created.password).await.unwrap().status(), 401);
        assert_eq!(
            get(&gw.alice.name, &created.password)
                .await
                .unwrap()
                .status(),
            401
        );

        // Alice's client logs in (the password is verified and remembered), then someone
        // guesses: after the limit new guesses get 429, the known password still works,
        // and bob is not affected.
        assert_eq!(
            get(&gw.alice.name, &gw.alice.password)
                .await
                .unwrap()
                .status(),
            200
        );
        // The revoked app password above was alice's first failure.
        for _ in 1..portico_drive::MAX_FAILURES_PER_ACCOUNT {
            assert_eq!(get(&gw.alice.name, "guess").await.unwrap().status(), 401);
        }
        let throttled = get(&gw.alice.name, "guess").await.unwrap();
        assert_eq!(throttled.status(), 429);
        let wait: u64 = throttled.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait > 0 && wait <= portico_drive::FAILURE_WINDOW.as_secs());
        assert_eq!(
            get(&gw.alice.name, &gw.alice.password)
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            get(&gw.bob.name, &gw.bob.password).await.unwrap().status(),
            200
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn owncloud_checksums_and_mtimes_are_honoured() {
    for gw in Gateway::each().await {
        let alice = &gw.alice;
        gw.dav("MKCOL", "/dav/oc", alice).send().await.unwrap();
        // sha1("hello") and md5("hello").
        let sha1 = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";
        let md5 = "5d41402abc4b2a76b9719d911017c592";
        let wrong = gw
            .dav("PUT", "/dav/oc/a.txt", alice)
            .header(
                "oc-checksum",
                "SHA1:0000000000000000000000000000000000000000",
            )
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 400);
        let absent = gw.dav("GET", "/dav/oc/a.txt", alice).send().await.unwrap();
        assert_eq!(absent.status(), 404, "a refused upload leaves nothing");
        let bad_md5 = gw
            .dav("PUT", "/dav/oc/a.txt", alice)
            .header("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(bad_md5.status(), 400);
        let put = gw
            .dav("PUT", "/dav/oc/a.txt", alice)
            .header("oc-checksum", format!("SHA1:{sha1}"))
            .header("x-oc-mtime", "1600000000")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
        assert_eq!(put.headers()["x-oc-mtime"], "accepted");
        let propfind = gw
            .dav("PROPFIND", "/dav/oc/a.txt", alice)
            .header("depth", "0")
            .body(r#"<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><d:getlastmodified/><oc:checksums/></d:prop></d:propfind>"#)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            propfind.contains(&format!("<oc:checksum>SHA1:{sha1} MD5:{md5}</oc:checksum>")),
            "{propfind}"
        );
        assert!(
            propfind.contains("Sun, 13 Sep 2020 12:26:40 GMT"),
            "{propfind}"
        );
        // MOVE and COPY take the mtime rclone sends along.
        let moved = gw
            .dav("MOVE", "/dav/oc/a.txt", alice)
            .header("destination", format!("{}/dav/oc/b.txt", gw.url))
            .header("x-oc-mtime", "1500000000")
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), 201);
        assert_eq!(moved.headers()["x-oc-mtime"], "accepted");
        let head = gw.dav("HEAD", "/dav/oc/b.txt", alice).send().await.unwrap();
        assert_eq!(
            head.headers()["last-modified"],
            "Fri, 14 Jul 2017 02:40:00 GMT"
        );
        gw.stop().await;
    }
}
