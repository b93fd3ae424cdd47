//! Listings: a folder's children (tree clients), and S3's flat key space with prefix,
//! delimiter and pagination — each page a bounded number of indexed queries, never one
//! per entry.

use portico_metadata::{KeyRange, NodeRow, prefix_successor};

use crate::error::{Error, Missing, Result};
use crate::model::{Ctx, Entry};
use crate::names::{Kind, NodePath};
use crate::{Action, Drive};

/// An S3 listing request. Keys are S3 keys (below the bucket).
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// List keys strictly after this one (`start-after`, `marker`, continuation).
    pub after: Option<String>,
    pub max_keys: usize,
}

/// One page of an S3 listing, merged in key order.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Objects with their S3 keys (folder markers end in `/`).
    pub objects: Vec<(String, Entry)>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix in this page: the next page starts after it.
    pub next_after: Option<String>,
}

enum Item {
    Object(String, Entry),
    Prefix(String),
}

impl Item {
    fn key(&self) -> &str {
        match self {
            Item::Object(key, _) | Item::Prefix(key) => key,
        }
    }
}

/// Rows fetched per catalog query when a page needs several.
const BATCH: i64 = 1000;

impl Drive {
    /// One page of a folder's children in key order, after the child key `after`.
    pub async fn list_folder(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Entry>> {
        let grant = self.authorize(ctx, path, Action::Read).await?;
        let catalog = &self.inner.catalog;
        let parent_id = if path.is_root() {
            None
        } else {
            let folder = catalog
                .node_by_key(grant.account_id, &path.folder_key())
                .await?;
            Some(folder.ok_or(Error::NotFound(Missing::Node))?.id)
        };
        let prefix = path.folder_key();
        let range = KeyRange::prefixed(&prefix, after.unwrap_or(""));
        let rows = catalog
            .list_children(grant.account_id, parent_id, &range, limit)
            .await?;
        Ok(rows.into_iter().map(Entry::from_owned_row).collect())
    }

    /// An S3 ListObjects page of bucket `bucket`.
    pub async fn list_objects(
        &self,
        ctx: &Ctx,
        bucket: &str,
        request: &ListRequest,
    ) -> Result<ListPage> {
        let bucket_path =
            NodePath::from_segments([bucket]).map_err(|_| Error::NotFound(Missing::Bucket))?;
        let grant = self.authorize(ctx, &bucket_path, Action::Read).await?;
        let catalog = &self.inner.catalog;
        let bucket_key = bucket_path.folder_key();
        if catalog
            .node_by_key(grant.account_id, &bucket_key)
            .await?
            .is_none()
        {
            return Err(Error::NotFound(Missing::Bucket));
        }
        if request.max_keys == 0 {
            return Ok(ListPage::default());
        }
        let full_prefix = format!("{bucket_key}{}", request.prefix);
        // Everything below the bucket sorts after its own key, so the bucket is never listed.
        let mut after = match &request.after {
            Some(after) if !after.is_empty() => format!("{bucket_key}{after}"),
            _ => bucket_key.clone(),
        };
        let want = request.max_keys + 1;
        let mut items: Vec<Item> = Vec::with_capacity(want.min(1024));
        let to_s3 = |key: &str| key[bucket_key.len()..].to_owned();

        let delimiter = request.delimiter.as_deref().filter(|d| !d.is_empty());
        if delimiter == Some("/") {
            // Tree mode: the children of the folder the prefix ends in, one indexed query per
            // batch; child folders are the common prefixes.
            let folder_key = match full_prefix.rfind('/') {
                Some(slash) => full_prefix[..=slash].to_owned(),
                None => bucket_key.clone(),
            };
            let Some(folder) = catalog.node_by_key(grant.account_id, &folder_key).await? else {
                return Ok(ListPage::default());
            };
            // The folder's own marker (`prefix/` itself) is listed as an object.
            if folder_key == full_prefix
                && folder_key != bucket_key
                && !folder.implicit
                && folder_key > after
            {
                items.push(Item::Object(to_s3(&folder.key), Entry::from_row(&folder)));
                after = folder_key.clone();
            }
            let upper = prefix_successor(&full_prefix);
            while items.len() < want {
                let range = KeyRange {
                    from: full_prefix.clone(),
                    after: after.clone(),
                    to: upper.clone(),
                };
                let limit = (want - items.len()) as i64;
                let rows = catalog
                    .list_children(grant.account_id, Some(folder.id), &range, limit)
                    .await?;
                let exhausted = (rows.len() as i64) < limit;
                for row in &rows {
                    after = row.key.clone();
                    items.push(if row.is_folder() {
                        Item::Prefix(to_s3(&row.key))
                    } else {
                        object(row, &to_s3)
                    });
                }
                if exhausted {
                    break;
                }
            }
        } else {
            // Range mode: every key under the prefix in byte order; with another delimiter,
            // each common prefix is emitted once and skipped past with a new seek.
            let upper = prefix_successor(&full_prefix);
            let mut from = full_prefix.clone();
            'scan: while items.len() < want {
                let range = KeyRange {
                    from: from.clone(),
                    after: after.clone(),
                    to: upper.clone(),
                };
                let limit = if delimiter.is_some() {
                    BATCH
                } else {
                    (want - items.len()) as i64
                };
                let rows = catalog
                    .list_range(grant.account_id, &range, false, limit)
                    .await?;
                let exhausted = (rows.len() as i64) < limit;
                for row in &rows {
                    let rest = &row.key[full_prefix.len()..];
                    if let Some(delimiter) = delimiter
                        && let Some(at) = rest.find(delimiter)
                    {
                        let common = format!("{full_prefix}{}", &rest[..at + delimiter.len()]);
                        items.push(Item::Prefix(to_s3(&common)));
                        match prefix_successor(&common) {
                            Some(next) => {
                                from = next;
                                after = common;
                                continue 'scan;
                            }
                            None => break 'scan,
                        }
                    }
                    after = row.key.clone();
                    items.push(object(row, &to_s3));
                    if items.len() >= want {
                        break 'scan;
                    }
                }
                if exhausted {
                    break;
                }
            }
        }

        let is_truncated = items.len() > request.max_keys;
        items.truncate(request.max_keys);
        let next_after = if is_truncated {
            items.last().map(|item| item.key().to_owned())
        } else {
            None
        };
        let mut page = ListPage {
            is_truncated,
            next_after,
            ..ListPage::default()
        };
        for item in items {
            match item {
                Item::Object(key, entry) => page.objects.push((key, entry)),
                Item::Prefix(prefix) => page.common_prefixes.push(prefix),
            }
        }
        Ok(page)
    }
}

fn object(row: &NodeRow, to_s3: &impl Fn(&str) -> String) -> Item {
    let entry = Entry::from_row(row);
    debug_assert!(entry.kind == Kind::File || !entry.implicit);
    Item::Object(to_s3(&row.key), entry)
}
