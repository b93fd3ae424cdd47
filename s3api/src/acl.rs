//! S3 ACLs onto Portico's sharing model (`drive::acl`): canned ACLs, `x-amz-grant-*`
//! headers and AccessControlPolicy bodies become grants for anyone (AllUsers), any
//! signed-in account (AuthenticatedUsers) or one account (CanonicalUser = its owner id).
//! What the sharing model cannot express is refused with a clear error.

use portico_drive::{AclGrant, Audience, Ctx, Drive, Kind, NodePath, Permission};
use s3s::S3Result;
use s3s::dto::*;

use crate::{fail, fail_invalid, object_path, owner};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// The grants a canned ACL stands for.
pub(crate) fn canned(ctx: &Ctx, name: &str) -> S3Result<Vec<AclGrant>> {
    let read = |audience| AclGrant {
        audience,
        permission: Permission::Read,
    };
    match name {
        "private" | "bucket-owner-read" | "bucket-owner-full-control" => Ok(Vec::new()),
        "public-read" => Ok(vec![read(Audience::Public)]),
        "authenticated-read" => Ok(vec![read(Audience::Authenticated)]),
        "public-read-write" => Err(fail_invalid(
            ctx,
            "x-amz-acl",
            "Portico does not let anonymous clients write",
        )),
        other => Err(fail_invalid(
            ctx,
            "x-amz-acl",
            &format!("the canned ACL {other} has no equivalent in Portico"),
        )),
    }
}

/// One grantee of `x-amz-grant-*` (`id="…"`, `uri="…"`) or of a policy body.
async fn audience(drive: &Drive, ctx: &Ctx, kind: &str, value: &str) -> S3Result<Audience> {
    match kind {
        "id" => Ok(Audience::Account(
            drive.grantee(value).await.map_err(fail(ctx))?.account_id,
        )),
        "uri" if value == ALL_USERS => Ok(Audience::Public),
        "uri" if value == AUTHENTICATED_USERS => Ok(Audience::Authenticated),
        "uri" => Err(fail_invalid(
            ctx,
            "grantee",
            &format!("the group {value} has no equivalent in Portico"),
        )),
        "emailAddress" => Err(fail_invalid(
            ctx,
            "grantee",
            "grants by e-mail address are not supported; use the owner id",
        )),
        other => Err(fail_invalid(
            ctx,
            "grantee",
            &format!("unknown grantee type {other}"),
        )),
    }
}

fn permission(ctx: &Ctx, name: &str) -> S3Result<Permission> {
    match name {
        Permission_::READ => Ok(Permission::Read),
        Permission_::WRITE => Ok(Permission::Write),
        // The owner always has full control; others get no ACL rights of their own.
        other => Err(fail_invalid(
            ctx,
            "permission",
            &format!("{other} cannot be granted in Portico (READ and WRITE can)"),
        )),
    }
}

use s3s::dto::Permission as Permission_;

/// Every grant a PutBucketAcl/PutObjectAcl carries, from whichever form it used.
#[allow(clippy::too_many_arguments)]
async fn requested(
    drive: &Drive,
    ctx: &Ctx,
    canned_acl: Option<&str>,
    policy: Option<AccessControlPolicy>,
    grant_read: Option<&str>,
    grant_write: Option<&str>,
    grant_other: [Option<&str>; 3],
) -> S3Result<Vec<AclGrant>> {
    if let Some(name) = canned_acl {
        return canned(ctx, name);
    }
    let mut grants = Vec::new();
    if let Some(policy) = policy {
        for grant in policy.grants.unwrap_or_default() {
            let Some(grantee) = grant.grantee else {
                continue;
            };
            let name = grant
                .permission
                .as_ref()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            let audience = match grantee.type_.as_str() {
                Type::CANONICAL_USER => {
                    let id = grantee.id.unwrap_or_default();
                    if id == ctx.principal.owner_id {
                        continue; // the owner's own FULL_CONTROL
                    }
                    audience(drive, ctx, "id", &id).await?
                }
                Type::GROUP => {
                    audience(
                        drive,
                        ctx,
                        "uri",
                        grantee.uri.as_deref().unwrap_or_default(),
                    )
                    .await?
                }
                _ => audience(drive, ctx, "emailAddress", "").await?,
            };
            grants.push(AclGrant {
                audience,
                permission: permission(ctx, &name)?,
            });
        }
        return Ok(grants);
    }
    for (header, value) in [
        (Permission_::READ, grant_read),
        (Permission_::WRITE, grant_write),
    ] {
        for item in value
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let (kind, quoted) = item
                .split_once('=')
                .ok_or_else(|| fail_invalid(ctx, "x-amz-grant", "use type=\"value\""))?;
            let who = audience(drive, ctx, kind.trim(), quoted.trim().trim_matches('"')).await?;
            grants.push(AclGrant {
                audience: who,
                permission: permission(ctx, header)?,
            });
        }
    }
    if grant_other
        .iter()
        .any(|g| g.is_some_and(|g| !g.trim().is_empty()))
    {
        return Err(fail_invalid(
            ctx,
            "x-amz-grant",
            "only READ and WRITE can be granted in Portico",
        ));
    }
    Ok(grants)
}

/// The AccessControlPolicy S3 returns: the owner's FULL_CONTROL and every grant.
async fn policy(drive: &Drive, ctx: &Ctx, grants: Vec<AclGrant>) -> S3Result<(Vec<Grant>, Owner)> {
    let mut out = vec![Grant {
        grantee: Some(Grantee {
            type_: Type::from_static(Type::CANONICAL_USER),
            id: Some(ctx.principal.owner_id.clone()),
            display_name: Some(ctx.principal.name.clone()),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission_::from_static(Permission_::FULL_CONTROL)),
    }];
    for grant in grants {
        let grantee = match grant.audience {
            Audience::Public | Audience::Authenticated => Grantee {
                type_: Type::from_static(Type::GROUP),
                uri: Some(
                    if grant.audience == Audience::Public {
                        ALL_USERS
                    } else {
                        AUTHENTICATED_USERS
                    }
                    .to_owned(),
                ),
                id: None,
                display_name: None,
                email_address: None,
            },
            Audience::Account(id) => {
                let who = drive.grantee_by_id(id).await.map_err(fail(ctx))?;
                Grantee {
                    type_: Type::from_static(Type::CANONICAL_USER),
                    id: Some(who.owner_id),
                    display_name: Some(who.name),
                    email_address: None,
                    uri: None,
                }
            }
        };
        let permission = match grant.permission {
            Permission::Read => Permission_::READ,
            Permission::Write => Permission_::WRITE,
        };
        out.push(Grant {
            grantee: Some(grantee),
            permission: Some(Permission_::from_static(permission)),
        });
    }
    Ok((out, owner(ctx)))
}

fn bucket_path(ctx: &Ctx, bucket: &str) -> S3Result<NodePath> {
    NodePath::from_segments([bucket]).map_err(fail(ctx))
}

pub(crate) async fn get_bucket_acl(
    drive: &Drive,
    ctx: &Ctx,
    input: GetBucketAclInput,
) -> S3Result<GetBucketAclOutput> {
    let path = bucket_path(ctx, &input.bucket)?;
    let grants = drive
        .acl(ctx, &path, Kind::Folder)
        .await
        .map_err(fail(ctx))?;
    let (grants, owner) = policy(drive, ctx, grants).await?;
    Ok(GetBucketAclOutput {
        grants: Some(grants),
        owner: Some(owner),
    })
}

pub(crate) async fn put_bucket_acl(
    drive: &Drive,
    ctx: &Ctx,
    input: PutBucketAclInput,
) -> S3Result<PutBucketAclOutput> {
    let path = bucket_path(ctx, &input.bucket)?;
    let grants = requested(
        drive,
        ctx,
        input.acl.as_ref().map(|a| a.as_str()),
        input.access_control_policy,
        input.grant_read.as_deref(),
        input.grant_write.as_deref(),
        [
            input.grant_full_control.as_deref(),
            input.grant_read_acp.as_deref(),
            input.grant_write_acp.as_deref(),
        ],
    )
    .await?;
    drive
        .set_acl(ctx, &path, Kind::Folder, &grants)
        .await
        .map_err(fail(ctx))?;
    Ok(PutBucketAclOutput::default())
}

pub(crate) async fn get_object_acl(
    drive: &Drive,
    ctx: &Ctx,
    input: GetObjectAclInput,
) -> S3Result<GetObjectAclOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let grants = drive.acl(ctx, &path, kind).await.map_err(fail(ctx))?;
    let (grants, owner) = policy(drive, ctx, grants).await?;
    Ok(GetObjectAclOutput {
        grants: Some(grants),
        owner: Some(owner),
        request_charged: None,
    })
}

pub(crate) async fn put_object_acl(
    drive: &Drive,
    ctx: &Ctx,
    input: PutObjectAclInput,
) -> S3Result<PutObjectAclOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    if input.grant_write.is_some() {
        return Err(fail_invalid(
            ctx,
            "x-amz-grant-write",
            "WRITE applies to buckets, not objects",
        ));
    }
    let grants = requested(
        drive,
        ctx,
        input.acl.as_ref().map(|a| a.as_str()),
        input.access_control_policy,
        input.grant_read.as_deref(),
        None,
        [
            input.grant_full_control.as_deref(),
            input.grant_read_acp.as_deref(),
            input.grant_write_acp.as_deref(),
        ],
    )
    .await?;
    drive
        .set_acl(ctx, &path, kind, &grants)
        .await
        .map_err(fail(ctx))?;
    Ok(PutObjectAclOutput::default())
}

/// Applies a canned ACL sent with a create (CreateBucket, PutObject, CreateMultipartUpload).
pub(crate) async fn apply_canned(
    drive: &Drive,
    ctx: &Ctx,
    path: &NodePath,
    kind: Kind,
    acl: Option<&str>,
) -> S3Result<()> {
    let Some(name) = acl else { return Ok(()) };
    let grants = canned(ctx, name)?;
    if grants.is_empty() {
        return Ok(());
    }
    drive
        .set_acl(ctx, path, kind, &grants)
        .await
        .map_err(fail(ctx))
}

pub(crate) async fn get_ownership(
    drive: &Drive,
    ctx: &Ctx,
    input: GetBucketOwnershipControlsInput,
) -> S3Result<GetBucketOwnershipControlsOutput> {
    drive.bucket(ctx, &input.bucket).await.map_err(fail(ctx))?;
    // Every object belongs to the bucket's owner, whoever wrote it: that is what
    // BucketOwnerEnforced means. Grants to others are shares, readable with GetBucketAcl.
    let rule = OwnershipControlsRule {
        object_ownership: ObjectOwnership::from_static(ObjectOwnership::BUCKET_OWNER_ENFORCED),
    };
    Ok(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
    })
}
