//! Operating-system WebDAV clients, replayed request by request as they were captured
//! (Windows' mini-redirector, Office, macOS WebDAVFS, GNOME gvfs, davfs2/neon), with what
//! each expects back — and what the S3 side sees afterwards.

use aws_sdk_s3::primitives::ByteStream;
use reqwest::StatusCode;

use crate::common::{Gateway, xml_values};

const WIN32_PROPS: &str = r#"<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32CreationTime>Sat, 29 Jun 2013 19:36:18 GMT</Z:Win32CreationTime><Z:Win32LastAccessTime>Mon, 02 Dec 2024 08:00:00 GMT</Z:Win32LastAccessTime><Z:Win32LastModifiedTime>Wed, 15 May 2024 10:30:00 GMT</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"#;

const WINDOWS_LOCK: &str = r#"<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>OFFICE\alice</D:href></D:owner></D:lockinfo>"#;

fn lock_token(response: &reqwest::Response) -> String {
    response.headers()["lock-token"]
        .to_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_owned()
}

#[tokio::test]
async fn windows_explorer_copies_a_file_onto_a_mapped_drive() {
    for gw in Gateway::each().await {
        let alice = &gw.alice;
        alice
            .s3
            .create_bucket()
            .bucket("share")
            .send()
            .await
            .unwrap();
        let win = |method: &str, path: &str| {
            gw.dav(method, path, alice)
                .header("user-agent", "Microsoft-WebDAV-MiniRedir/10.0.19045")
                .header("translate", "f")
        };
        let file = "/dav/share/report.docx";

        let probe = win("PROPFIND", file)
            .header("depth", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(probe.status(), 404);
        let empty = win("PUT", file).body("").send().await.unwrap();
        assert_eq!(empty.status(), 201);
        // No Depth header, an hour's timeout, the owner as DOMAIN\user.
        let locked = win("LOCK", file)
            .header("timeout", "Second-3600")
            .header("content-type", "text/xml; charset=\"utf-8\"")
            .body(WINDOWS_LOCK)
            .send()
            .await
            .unwrap();
        assert_eq!(locked.status(), 200);
        let token = lock_token(&locked);
        let discovery = locked.text().await.unwrap();
        assert!(discovery.contains("OFFICE\\alice"), "{discovery}");
        assert_eq!(xml_values(&discovery, "timeout"), ["Second-3600"]);
        let if_header = format!("(<{token}>)");

        let patched = win("PROPPATCH", file)
            .header("if", &if_header)
            .body(WIN32_PROPS)
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 207);
        let statuses = xml_values(&patched.text().await.unwrap(), "status");
        assert_eq!(
            statuses,
            ["HTTP/1.1 200 OK"],
            "one propstat, every property set"
        );
        assert_eq!(win("HEAD", file).send().await.unwrap().status(), 200);

        // While Explorer holds the lock, nobody else writes: not WebDAV, not S3.
        let other = gw
            .dav("PUT", file, alice)
            .body("sneaky")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 423);
        let s3_put = alice
            .s3
            .put_object()
            .bucket("share")
            .key("report.docx")
            .body(ByteStream::from_static(b"sneaky"))
            .send()
            .await;
        assert!(s3_put.is_err(), "an S3 write to a locked file is refused");

        let content = vec![7u8; 300_000];
        let put = win("PUT", file)
            .header("if", &if_header)
            .body(content.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204);
        let again = win("PROPPATCH", file)
            .header("if", &if_header)
            .body(WIN32_PROPS)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 207);
        let unlocked = win("UNLOCK", file)
            .header("lock-token", format!("<{token}>"))
            .send()
            .await
            .unwrap();
        assert_eq!(unlocked.status(), 204);

        // The bytes, and Win32LastModifiedTime as the one modification time.
        let head = alice
            .s3
            .head_object()
            .bucket("share")
            .key("report.docx")
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(300_000));
        assert_eq!(
            head.last_modified().unwrap().secs(),
            1_715_769_000,
            "Wed, 15 May 2024 10:30:00 GMT"
        );
        let listing = win("PROPFIND", "/dav/share/")
            .header("depth", "1")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            listing.contains("Wed, 15 May 2024 10:30:00 GMT"),
            "{listing}"
        );
        assert!(
            listing.contains(">00000020</Z:Win32FileAttributes>"),
            "{listing}"
        );
        assert!(
            listing.contains(">Sat, 29 Jun 2013 19:36:18 GMT</Z:Win32CreationTime>"),
            "{listing}"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn windows_listings_stay_under_its_size_limit() {
    // Explorer reads a folder with an allprop PROPFIND and gives up on answers over
    // FileAttributesLimitInBytes (1,000,000 by default). Measure what one file Explorer
    // copied (with its Win32 properties) costs in a listing.
    for gw in Gateway::each().await {
        let alice = &gw.alice;
        alice
            .s3
            .create_bucket()
            .bucket("many")
            .send()
            .await
            .unwrap();
        for i in 0..20 {
            let path = format!("/dav/many/Quarterly report {i:04}.docx");
            gw.dav("PUT", &path, alice).body("x").send().await.unwrap();
            let patched = gw
                .dav("PROPPATCH", &path, alice)
                .body(WIN32_PROPS)
                .send()
                .await
                .unwrap();
            assert_eq!(patched.status(), 207);
        }
        let listing = gw
            .dav("PROPFIND", "/dav/many/", alice)
            .header("depth", "1")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let per_entry = listing.len() / 21;
        println!("allprop bytes per Explorer-copied file: {per_entry}");
        assert!(
            1_000_000 / per_entry >= 1000,
            "README promises 1,000 entries within Explorer's limit; one takes {per_entry} bytes"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn office_saves_with_owner_file_refreshes_and_renames() {
    for gw in Gateway::each().await {
        let alice = &gw.alice;
        alice
            .s3
            .create_bucket()
            .bucket("docs")
            .send()
            .await
            .unwrap();
        let doc = "/dav/docs/plan.xlsx";
        gw.dav("PUT", doc, alice)
            .body("version 1")
            .send()
            .await
            .unwrap();
        let locked = gw
            .dav("LOCK", doc, alice)
            .header("timeout", "Second-3600")
            .body(WINDOWS_LOCK)
            .send()
            .await
            .unwrap();
        assert_eq!(locked.status(), 200);
        let token = lock_token(&locked);
        let with_lock = format!("(<{token}>)");

        // The owner file `~$plan.xlsx`, created like any Explorer copy.
        let owner = "/dav/docs/~$plan.xlsx";
        assert_eq!(
            gw.dav("PUT", owner, alice)
                .body("")
                .send()
                .await
                .unwrap()
                .status(),
            201
        );

        // A refresh: LOCK without a body, the token in If.
        let refreshed = gw
            .dav("LOCK", doc, alice)
            .header("if", &with_lock)
            .header("timeout", "Second-3600")
            .send()
            .await
            .unwrap();
        assert_eq!(refreshed.status(), 200);
        assert!(refreshed.text().await.unwrap().contains(&token));

        // Save: write a temp file, move the original aside, the temp over it, drop the
        // old one.
        let temp = "/dav/docs/~WRD0001.tmp";
        let aside = "/dav/docs/~WRL0001.tmp";
        let destination = |path: &str| format!("{}{path}", gw.url);
        assert_eq!(
            gw.dav("PUT", temp, alice)
                .body("version 2")
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        let moved_aside = gw
            .dav("MOVE", doc, alice)
            .header("destination", destination(aside))
            .header("if", &with_lock)
            .send()
            .await
            .unwrap();
        assert_eq!(moved_aside.status(), 201);
        let moved_in = gw
            .dav("MOVE", temp, alice)
            .header("destination", destination(doc))
            .header("overwrite", "T")
            .send()
            .await
            .unwrap();
        assert_eq!(moved_in.status(), 201);
        assert_eq!(
            gw.dav("DELETE", aside, alice)
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
        assert_eq!(
            gw.dav("DELETE", owner, alice)
                .send()
                .await
                .unwrap()
                .status(),
            204
        );

        let got = gw.dav("GET", doc, alice).send().await.unwrap();
        assert_eq!(got.text().await.unwrap(), "version 2");
        // The lock was on the URL the original left: it went with it.
        let put = gw
            .dav("PUT", doc, alice)
            .body("version 3")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204);
        let listed = alice
            .s3
            .list_objects_v2()
            .bucket("docs")
            .send()
            .await
            .unwrap();
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, ["plan.xlsx"], "no temp or owner file is left behind");
        gw.stop().await;
    }
}

#[tokio::test]
async fn macos_finder_copies_with_chunked_bodies_and_appledouble_files() {
    for gw in Gateway::each().await {
        let alice = &gw.alice;
        alice.s3.create_bucket().bucket("mac").send().await.unwrap();
        let finder = |method: &str, path: &str| {
            gw.dav(method, path, alice).header(
                "user-agent",
                "WebDAVFS/3.0.0 (03008000) Darwin/22.6.0 (arm64)",
            )
        };
        // Probes after mounting: each a plain, quick 404.
        for probe in [
            "/dav/mac/.metadata_never_index",
            "/dav/mac/.localized",
            "/dav/mac/._.",
            "/dav/mac/.ql_disablethumbnails",
            "/dav/mach_kernel",
            "/dav/Backups.backupdb",
        ] {
            let answer = finder("PROPFIND", probe)
                .header("depth", "0")
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 404, "{probe}");
        }
        let photo = vec![42u8; 2_000_000];
        for (path, body) in [
            ("/dav/mac/photo.heic", photo.clone()),
            ("/dav/mac/._photo.heic", vec![0u8; 4096]),
        ] {
            assert_eq!(
                finder("PROPFIND", path)
                    .header("depth", "0")
                    .send()
                    .await
                    .unwrap()
                    .status(),
                404
            );
            assert_eq!(
                finder("PUT", path).body("").send().await.unwrap().status(),
                201
            );
            let locked = finder("LOCK", path)
                .header("depth", "0")
                .header("timeout", "Second-600")
                .body(r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>http://www.apple.com/webdav_fs/</D:href></D:owner></D:lockinfo>"#)
                .send()
                .await
                .unwrap();
            assert_eq!(locked.status(), 200);
            let token = lock_token(&locked);
            // Chunked, no Content-Length, the size in X-Expected-Entity-Length.
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                body.chunks(65_536).map(|c| Ok(c.to_vec())).collect();
            let put = finder("PUT", path)
                .header("if", format!("(<{token}>)"))
                .header("x-expected-entity-length", body.len().to_string())
                .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
                .send()
                .await
                .unwrap();
            assert_eq!(put.status(), 204, "{path}");
            let unlocked = finder("UNLOCK", path)
                .header("lock-token", format!("<{token}>"))
                .send()
                .await
                .unwrap();
            assert_eq!(unlocked.status(), 204);
            let got = gw.dav("GET", path, alice).send().await.unwrap();
            assert_eq!(got.bytes().await.unwrap().len(), body.len());
        }
        // .DS_Store is stored and deletable like any file.
        assert_eq!(
            finder("PUT", "/dav/mac/.DS_Store")
                .body("ds")
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        // Policy: what a Mac writes is an ordinary file, so S3 lists it too.
        let listed = alice
            .s3
            .list_objects_v2()
            .bucket("mac")
            .send()
            .await
            .unwrap();
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, [".DS_Store", "._photo.heic", "photo.heic"]);
        assert_eq!(
            finder("DELETE", "/dav/mac/.DS_Store")
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn gnome_gvfs_walks_up_makes_folders_and_saves_with_etags() {
    for gw in Gateway::each().await {
        let alice = &gw.alice;
        alice
            .s3
            .create_bucket()
            .bucket("gnome")
            .send()
            .await
            .unwrap();
        // Mounting dav://host/dav/gnome/: OPTIONS, then each parent until it fails.
        for path in ["/dav/gnome/", "/dav/", "/"] {
            let options = gw
                .http
                .request(reqwest::Method::OPTIONS, format!("{}{path}", gw.url))
                .send()
                .await
                .unwrap();
            assert_eq!(options.status(), 200, "{path}");
            assert!(
                options.headers()["dav"].to_str().unwrap().contains('1'),
                "{path}"
            );
            let found = gw
                .dav("PROPFIND", path, alice)
                .header("depth", "1")
                .body(r#"<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>"#)
                .send()
                .await
                .unwrap();
            assert_eq!(found.status(), 207, "{path}");
            let xml = found.text().await.unwrap();
            assert!(xml.contains("<D:collection/>"), "{path}: {xml}");
        }
        let root = gw
            .dav("PROPFIND", "/", alice)
            .header("depth", "1")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(xml_values(&root, "href"), ["/", "/dav/"]);

        // New folder: a placeholder name, then MOVE to what the user typed.
        let made = gw
            .dav("MKCOL", "/dav/gnome/Untitled%20Folder/", alice)
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 201);
        let renamed = gw
            .dav("MOVE", "/dav/gnome/Untitled%20Folder", alice)
            .header(
                "destination",
                format!("{}/dav/gnome/Holiday%20photos", gw.url),
            )
            .header("overwrite", "F")
            .send()
            .await
            .unwrap();
        assert_eq!(renamed.status(), 201);

        // An editor saves: HEAD with If-Match, then PUT with If-Match.
        let file = "/dav/gnome/Holiday%20photos/notes.txt";
        let created = gw
            .dav("PUT", file, alice)
            .body("first")
            .send()
            .await
            .unwrap();
        let etag = created.headers()["etag"].to_str().unwrap().to_owned();
        let head = gw
            .dav("HEAD", file, alice)
            .header("if-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        let saved = gw
            .dav("PUT", file, alice)
            .header("if-match", &etag)
            .body("second")
            .send()
            .await
            .unwrap();
        assert_eq!(saved.status(), 204);
        let stale = gw
            .dav("PUT", file, alice)
            .header("if-match", &etag)
            .body("lost update")
            .send()
            .await
            .unwrap();
        assert_eq!(
            stale.status(),
            412,
            "a save over someone else's change is refused"
        );
        let got = gw.dav("GET", file, alice).send().await.unwrap();
        assert_eq!(got.text().await.unwrap(), "second");
        // Collections without their trailing slash, answered directly (no redirect).
        let folder = gw
            .dav("PROPFIND", "/dav/gnome/Holiday%20photos", alice)
            .header("depth", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(folder.status(), 207);
        let deleted = gw
            .dav("DELETE", "/dav/gnome/Holiday%20photos", alice)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        gw.stop().await;
    }
}

#[tokio::test]
async fn davfs2_locks_new_files_and_writes_with_tagged_ifs() {
    for gw in Gateway::each().await {
        let alice = &gw.alice;
        alice
            .s3
            .create_bucket()
            .bucket("linux")
            .send()
            .await
            .unwrap();
        let path = "/dav/linux/new.txt";
        let lockinfo = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<lockinfo xmlns='DAV:'>\n <lockscope><exclusive/></lockscope>\n<locktype><write/></locktype><owner>alice</owner>\n</lockinfo>\n";
        // A new file is locked with If-None-Match: * and answered 201 with a token.
        let locked = gw
            .dav("LOCK", path, alice)
            .header("depth", "0")
            .header("timeout", "Second-1800")
            .header("if-none-match", "*")
            .body(lockinfo)
            .send()
            .await
            .unwrap();
        assert_eq!(locked.status(), 201);
        let token = lock_token(&locked);
        let xml = locked.text().await.unwrap();
        assert!(
            xml.contains(&token) && xml.contains(">alice</owner>"),
            "{xml}"
        );
        // Locking it again as new fails: it exists now.
        let twice = gw
            .dav("LOCK", "/dav/linux/other.txt", alice)
            .header("if-none-match", "*")
            .body(lockinfo)
            .send()
            .await
            .unwrap();
        assert_eq!(twice.status(), 201);
        let exists = gw
            .dav("LOCK", "/dav/linux/other.txt", alice)
            .header("if-none-match", "*")
            .body(lockinfo)
            .send()
            .await
            .unwrap();
        assert_eq!(exists.status(), 412);

        // neon's PUT: If-Match on the ETag and a tagged If list naming the URL.
        let etag = gw.dav("HEAD", path, alice).send().await.unwrap().headers()["etag"]
            .to_str()
            .unwrap()
            .to_owned();
        let put = gw
            .dav("PUT", path, alice)
            .header("if-match", &etag)
            .header("if", format!("<{}{path}> (<{token}>)", gw.url))
            .body("from davfs2")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204);
        // The refresh neon sends a minute before expiry: the activelock comes back.
        let refreshed = gw
            .dav("LOCK", path, alice)
            .header("if", format!("(<{token}>)"))
            .header("timeout", "Second-1800")
            .send()
            .await
            .unwrap();
        assert_eq!(refreshed.status(), 200);
        assert!(refreshed.text().await.unwrap().contains("<D:activelock>"));

        // df: quota on the collection.
        let quota = gw
            .dav("PROPFIND", "/dav/", alice)
            .header("depth", "0")
            .body(r#"<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><quota-available-bytes/><quota-used-bytes/></prop></propfind>"#)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let used: u64 = xml_values(&quota, "quota-used-bytes")[0].parse().unwrap();
        let available: u64 = xml_values(&quota, "quota-available-bytes")[0]
            .parse()
            .unwrap();
        assert!(used >= "from davfs2".len() as u64, "{quota}");
        assert!(available > 0, "{quota}");
        let unlocked = gw
            .dav("UNLOCK", path, alice)
            .header("lock-token", format!("<{token}>"))
            .send()
            .await
            .unwrap();
        assert_eq!(unlocked.status(), StatusCode::NO_CONTENT);
        gw.stop().await;
    }
}
