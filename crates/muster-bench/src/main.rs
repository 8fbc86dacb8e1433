//! `muster-bench`: starts (or targets) a Muster server, loads a synthetic company over SCIM, and
//! times scenarios at a given concurrency. Prints a table and JSON.
//!
//! # Layout
//! - `main`: arguments, the server under test, the run.
//! - `Stats`: latency percentiles and throughput of one scenario.
//! - `webhooks`: provisioning with and without a webhook endpoint, and delivery latency.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod generate;
mod harness;
mod webhooks;

use harness::{push, run, run_units, single, user_body, Server, Stats};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

/// Times Muster's SCIM endpoints on a synthetic company.
#[derive(Debug, Parser)]
#[command(name = "muster-bench")]
struct Args {
    /// The `muster` binary to start (ignored with --url) [default: the `muster` beside this
    /// program, so `target/release/muster-bench` starts `target/release/muster` from any
    /// directory]
    #[arg(long)]
    muster: Option<std::path::PathBuf>,
    /// Database for the started server (default: a fresh SQLite file).
    #[arg(long)]
    database_url: Option<String>,
    /// Target a running server's SCIM base URL instead of starting one (needs --token).
    #[arg(long, requires = "token")]
    url: Option<String>,
    /// Bearer token for --url.
    #[arg(long)]
    token: Option<String>,
    /// Administrator API token for --url (the mapping scenario needs one).
    #[arg(long)]
    admin_token: Option<String>,
    /// SCIM groups the mapping scenario maps (each user joins one).
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// Users in the synthetic company; all of them join the giant group.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Requests per timed scenario.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Scenarios to run after the load (comma-separated), or "all": post-user, patch-member,
    /// patch-active, put-user, ceiling, get-user, filter-username, list-page, giant-group, mapping,
    /// webhook.
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// Write the JSON report here too.
    #[arg(long)]
    json: Option<String>,
    /// A line of `muster.toml` for the started server, such as `sqlite_synchronous_full = false`
    /// (repeatable).
    #[arg(long = "server-setting", value_name = "KEY = VALUE")]
    server_settings: Vec<String>,
    /// Start the server with `MUSTER_LOG=warn` (no request log). By default it runs as the
    /// README starts it, logging every request at `info` (to a file in its directory).
    #[arg(long)]
    quiet: bool,
    /// Write the --users users into the database before the server starts, through Muster's
    /// provisioning code in this process (see `generate.rs`), instead of loading them over SCIM;
    /// for runs at scale (a million users). The groups are not made, so the scenarios that need
    /// them (patch-member, giant-group, mapping) are left out; the server's start-up time on the
    /// filled database is reported.
    #[arg(long)]
    generate: bool,
}

async fn start(args: &Args) -> anyhow::Result<Server> {
    if let (Some(url), Some(token)) = (&args.url, &args.token) {
        return Ok(Server {
            base: url.trim_end_matches('/').into(),
            token: token.clone(),
            admin_token: args.admin_token.clone(),
            child: None,
            dir: None,
            generated: None,
            startup: None,
        });
    }
    let dir = std::env::temp_dir().join(format!("muster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // The load generator is one client sending as fast as it can: the per-provider and
    // per-credential rate limits stay on (their code runs, as for users), with limits high
    // enough never to refuse.
    let config = dir.join("muster.toml");
    let mut toml = String::from(
        "rate_limit_per_second = 1000000\nrate_limit_burst = 1000000\n\
         api_rate_limit_per_second = 1000000\napi_rate_limit_burst = 1000000\n",
    );
    if args.scenarios == "all" || args.scenarios.contains("webhook") {
        // The webhook scenario's receiver listens on loopback.
        toml.push_str("allow_private_webhook_urls = true\n");
    }
    for line in &args.server_settings {
        toml.push_str(line);
        toml.push('\n');
    }
    std::fs::write(&config, toml)?;
    let env = |c: &mut Command| {
        c.env("MUSTER_CONFIG", &config)
            .env("MUSTER_DATA_DIR", &dir)
            .env("MUSTER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("MUSTER_PUBLIC_URL", format!("http://127.0.0.1:{port}"));
        if args.quiet {
            c.env("MUSTER_LOG", "warn");
        }
        if let Some(db) = &args.database_url {
            c.env("MUSTER_DATABASE_URL", db);
        }
    };
    let exe = match &args.muster {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .with_file_name(format!("muster{}", std::env::consts::EXE_SUFFIX)),
    };
    let mut add = Command::new(&exe);
    add.args(["provider", "add", "--name", "Bench", "--json"]);
    env(&mut add);
    let out = add.output().with_context(|| match &args.muster {
        Some(_) => format!("cannot run {}", exe.display()),
        None => format!(
            "cannot run {}, the muster beside muster-bench (--muster names another)",
            exe.display()
        ),
    })?;
    if !out.status.success() {
        bail!(
            "muster provider add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let created: Value = serde_json::from_slice(&out.stdout)?;
    let mut admin = Command::new(&exe);
    admin.args(["admin", "token", "create", "--label", "bench", "--json"]);
    env(&mut admin);
    let out = admin.output()?;
    if !out.status.success() {
        bail!(
            "muster admin token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let admin_token: Value = serde_json::from_slice(&out.stdout)?;
    let generated = match args.generate {
        true => {
            let provider = created["provider"]["id"]
                .as_str()
                .and_then(|p| p.parse::<muster_core::ids::ProviderId>().ok())
                .context("muster provider add printed no provider id")?;
            let url = args
                .database_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", dir.join("muster.db").display()));
            Some(
                generate::users(
                    &url,
                    &format!("http://127.0.0.1:{port}"),
                    provider,
                    created["token"]["secret"].as_str().unwrap_or_default(),
                    args.users,
                    64,
                )
                .await?,
            )
        }
        false => None,
    };
    let mut serve = Command::new(&exe);
    let log = std::fs::File::create(dir.join("server.log"))?;
    serve
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    env(&mut serve);
    let spawned = Instant::now();
    let child = serve.spawn()?;
    let mut server = Server {
        base: created["provider"]["scimBaseUrl"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        token: created["token"]["secret"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        admin_token: admin_token["secret"].as_str().map(str::to_string),
        child: Some(child),
        dir: Some(dir),
        generated,
        startup: None,
    };
    let client = reqwest::Client::new();
    for _ in 0..1000 {
        if client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            server.startup = Some(spawned.elapsed());
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the server did not become ready")
}

/// The groups of the initial sync: `groups` SCIM groups, each POSTed with `members: []`, then
/// filled by membership PATCHes of at most 100 members, every user in one group, as Okta pushes
/// groups. Returns the timings and the groups' ids.
async fn sync_groups(
    server: &Server,
    ids: &[String],
    groups: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<Stats>, Vec<String>)> {
    let groups = groups.clamp(1, ids.len());
    let client = reqwest::Client::new();
    let mut report = Vec::new();
    let names: Vec<String> = (0..groups).map(|g| format!("Team {g:04}")).collect();
    let pushed = run(server, "load: POST /Groups (members: [])", groups, concurrency, {
        let names = names.clone();
        move |g| {
            (
                reqwest::Method::POST,
                "/Groups".into(),
                Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": names[g], "members": []})),
            )
        }
    })
    .await;
    push(&mut report, server, pushed);
    // The groups' ids, by name.
    let mut group_ids = vec![String::new(); groups];
    let mut start = 1;
    loop {
        let page: Value = client
            .get(format!(
                "{}/Groups?startIndex={start}&count=1000&excludedAttributes=members",
                server.base
            ))
            .bearer_auth(&server.token)
            .send()
            .await?
            .json()
            .await?;
        let items = page["Resources"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for g in items {
            let name = g["displayName"].as_str().unwrap_or_default();
            // "Team 0042" is group 42.
            let index = name
                .strip_prefix("Team ")
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(slot) = index.and_then(|i| group_ids.get_mut(i)) {
                *slot = g["id"].as_str().unwrap_or_default().to_string();
            }
        }
        start += 1000;
    }
    // Group g holds the users g, g + groups, g + 2 * groups, …, sent 100 at a time.
    let mut batches: Vec<(usize, Vec<String>)> = Vec::new();
    for (g, _) in group_ids.iter().enumerate() {
        let members: Vec<String> = ids.iter().skip(g).step_by(groups).cloned().collect();
        for chunk in members.chunks(100) {
            batches.push((g, chunk.to_vec()));
        }
    }
    let batches = Arc::new(batches);
    let fill = run(
        server,
        "load: PATCH group members, batches of 100",
        batches.len(),
        concurrency,
        {
            let group_ids = group_ids.clone();
            let batches = batches.clone();
            move |i| {
                let (g, members) = &batches[i];
                let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
                (
                    reqwest::Method::PATCH,
                    format!("/Groups/{}?excludedAttributes=members", group_ids[*g]),
                    Some(patch(
                        json!([{"op": "add", "path": "members", "value": members}]),
                    )),
                )
            }
        },
    )
    .await;
    push(&mut report, server, fill);
    Ok((report, group_ids))
}

/// Organization and role mapping over the loaded company and the groups of its initial sync
/// (each user in one), filled before any mapping exists, as when an administrator assigns
/// people first: 100 organizations with 10 groups each, role mappings for every group, and the
/// timed preview and re-apply that place every user.
async fn mapping_scenario(server: &Server, group_ids: &[String]) -> anyhow::Result<Vec<Stats>> {
    let Some(admin) = &server.admin_token else {
        bail!("the mapping scenario needs an administrator API token (--admin-token)");
    };
    let groups = group_ids.len();
    let api = match server.base.split_once("/scim/v2/") {
        Some((root, _)) => format!("{root}/api/v1"),
        None => bail!("cannot tell the API address from {}", server.base),
    };
    let provider = server
        .base
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let client = reqwest::Client::new();
    let mut report = Vec::new();

    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = client
            .request(method, format!("{api}{path}"))
            .bearer_auth(admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req
    };
    let roles: Value = call(reqwest::Method::GET, "/roles".into(), None)
        .send()
        .await?
        .json()
        .await?;
    let role = |name: &str| {
        roles["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == name)
            .and_then(|r| r["id"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (desktop, proe, org_admin) = (role("Desktop User"), role("PROe User"), role("Org Admin"));
    let orgs = groups.div_ceil(10);
    let mut org_ids = Vec::with_capacity(orgs);
    for o in 0..orgs {
        let r: Value = call(
            reqwest::Method::POST,
            "/orgs".into(),
            Some(json!({"name": format!("Division {o:03}")})),
        )
        .send()
        .await?
        .json()
        .await?;
        org_ids.push(r["id"].as_str().unwrap_or_default().to_string());
    }
    let r = call(
        reqwest::Method::PUT,
        format!("/providers/{provider}/mapping/org"),
        Some(json!({"method": "groups"})),
    )
    .send()
    .await?;
    if !r.status().is_success() {
        bail!("setting the mapping method failed: {}", r.text().await?);
    }
    for (o, org) in org_ids.iter().enumerate() {
        let entry: Vec<&String> = group_ids.iter().skip(o * 10).take(10).collect();
        let r = call(
            reqwest::Method::POST,
            format!("/providers/{provider}/mapping/groups"),
            Some(json!({"groupIds": entry, "orgId": org})),
        )
        .send()
        .await?;
        if !r.status().is_success() {
            bail!("adding a group mapping failed: {}", r.text().await?);
        }
    }
    for (g, gid) in group_ids.iter().enumerate() {
        let mut roles = vec![&desktop, &proe];
        if g % 10 == 0 {
            roles.push(&org_admin);
        }
        let r = call(
            reqwest::Method::PUT,
            format!("/providers/{provider}/mapping/roles/{gid}"),
            Some(json!({"roleIds": roles})),
        )
        .send()
        .await?;
        if !r.status().is_success() {
            bail!("adding a role mapping failed: {}", r.text().await?);
        }
    }

    let t = Instant::now();
    let r = call(
        reqwest::Method::GET,
        format!("/providers/{provider}/mapping/preview?limit=100"),
        None,
    )
    .send()
    .await?;
    let status = r.status().as_u16();
    let preview: Value = r.json().await.unwrap_or_default();
    let elapsed = t.elapsed();
    println!(
        "mapping preview: {} of {} users change ({} moves, {} role changes) in {:.2} s",
        preview["changed"],
        preview["users"],
        preview["orgChanges"],
        preview["roleChanges"],
        elapsed.as_secs_f64()
    );
    push(
        &mut report,
        server,
        single(
            &format!("mapping: preview ({} users)", preview["users"]),
            elapsed,
            status,
        ),
    );
    let t = Instant::now();
    let r = call(
        reqwest::Method::POST,
        format!("/providers/{provider}/mapping/apply"),
        Some(json!({"digest": preview["digest"]})),
    )
    .send()
    .await?;
    let status = r.status().as_u16();
    let applied: Value = r.json().await.unwrap_or_default();
    let elapsed = t.elapsed();
    println!(
        "mapping apply: {} moved, {} role changes in {:.2} s",
        applied["applied"]["moved"],
        applied["applied"]["rolesChanged"],
        elapsed.as_secs_f64()
    );
    push(
        &mut report,
        server,
        single(
            &format!("mapping: apply ({} moved)", applied["applied"]["moved"]),
            elapsed,
            status,
        ),
    );
    let t = Instant::now();
    let r = call(
        reqwest::Method::GET,
        format!("/providers/{provider}/mapping/preview?limit=100"),
        None,
    )
    .send()
    .await?;
    let status = r.status().as_u16();
    let after: Value = r.json().await.unwrap_or_default();
    if after["changed"] != 0 {
        bail!(
            "after the apply, the preview still lists {} changes",
            after["changed"]
        );
    }
    push(
        &mut report,
        server,
        single(
            "mapping: preview after apply (0 changes)",
            t.elapsed(),
            status,
        ),
    );
    Ok(report)
}

/// The groups the SCIM load made (none when the users were generated).
struct Groups {
    small_id: String,
    giant_id: String,
    giant_path: String,
    group_ids: Vec<String>,
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut server = start(&args).await?;
    let wants =
        |s: &str| args.scenarios == "all" || args.scenarios.split(',').any(|x| x.trim() == s);
    let mut report = Vec::new();
    let c = args.concurrency;
    let client = reqwest::Client::new();

    if let Some(t) = server.startup {
        println!(
            "server ready {:.0} ms after it was started",
            t.as_secs_f64() * 1000.0
        );
    }
    // The company: generated before the server started, or loaded now over SCIM.
    let (ids, groups) = match server.generated.take() {
        Some(ids) => (ids, None),
        None => {
            // Load: the users, a 10-member group and a giant group of every user.
            // Okta's initial sync: for each user, an existence check by filter, then the POST.
            let load = run_units(
            &server,
            "load: filter userName eq, then POST /Users",
            args.users,
            c,
            |i| {
                vec![
                    (
                        reqwest::Method::GET,
                        format!(
                            "/Users?filter=userName%20eq%20%22user{i:07}%40bench.example%22&startIndex=1&count=100"
                        ),
                        None,
                    ),
                    (reqwest::Method::POST, "/Users".into(), Some(user_body(i))),
                ]
            },
        )
        .await;
            push(&mut report, &server, load);
            // The users' ids, in the order of their index (their userName says it).
            let mut indexed: Vec<(usize, String)> = Vec::with_capacity(args.users);
            let mut start = 1;
            loop {
                let page: Value = client
                    .get(format!(
                        "{}/Users?startIndex={start}&count=1000&attributes=id,userName",
                        server.base
                    ))
                    .bearer_auth(&server.token)
                    .send()
                    .await?
                    .json()
                    .await?;
                let items = page["Resources"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    break;
                }
                indexed.extend(items.iter().filter_map(|u| {
                    let name = u["userName"].as_str()?;
                    let i: usize = name.strip_prefix("user")?.split('@').next()?.parse().ok()?;
                    Some((i, u["id"].as_str()?.to_string()))
                }));
                start += 1000;
            }
            indexed.sort();
            let ids: Vec<String> = indexed.into_iter().map(|(_, id)| id).collect();
            if ids.len() < 12 {
                bail!("the load created only {} users", ids.len());
            }
            // The groups of the initial sync, and its total: users, groups and memberships.
            let users_elapsed = report.last().map(|s: &Stats| s.elapsed).unwrap_or_default();
            let users_requests = report
                .last()
                .map(|s: &Stats| s.requests * 2)
                .unwrap_or_default();
            let (group_stats, group_ids) = sync_groups(&server, &ids, args.groups, c).await?;
            let total = Stats {
                name: format!(
                    "initial sync: {} users, {} groups, {} members",
                    ids.len(),
                    group_ids.len(),
                    ids.len()
                ),
                requests: users_requests + group_stats.iter().map(|s| s.requests).sum::<usize>(),
                errors: report.iter().chain(&group_stats).map(|s| s.errors).sum(),
                elapsed: users_elapsed + group_stats.iter().map(|s| s.elapsed).sum::<Duration>(),
                latencies: Vec::new(),
                statuses: Vec::new(),
                peak_rss: None,
            };
            report.extend(group_stats);
            push(&mut report, &server, total);
            let make_group = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": []});
            let small: Value = client
                .post(format!("{}/Groups", server.base))
                .bearer_auth(&server.token)
                .json(&make_group("Small"))
                .send()
                .await?
                .json()
                .await?;
            let giant: Value = client
                .post(format!("{}/Groups", server.base))
                .bearer_auth(&server.token)
                .json(&make_group("Everyone"))
                .send()
                .await?
                .json()
                .await?;
            let (small_id, giant_id) = (
                small["id"].as_str().unwrap_or_default().to_string(),
                giant["id"].as_str().unwrap_or_default().to_string(),
            );
            let members = |slice: &[String]| {
                json!(slice
                    .iter()
                    .map(|id| json!({"value": id}))
                    .collect::<Vec<_>>())
            };
            client
                .patch(format!("{}/Groups/{small_id}", server.base))
                .bearer_auth(&server.token)
                .json(&patch(
                    json!([{"op": "add", "path": "members", "value": members(&ids[..10])}]),
                ))
                .send()
                .await?;
            let chunks: Vec<Vec<String>> = ids.chunks(1000).map(<[String]>::to_vec).collect();
            let giant_path = format!("/Groups/{giant_id}");
            let fill = {
                let chunks = chunks.clone();
                let giant_path = giant_path.clone();
                run(
                &server,
                "load: PATCH giant group +1000",
                chunks.len(),
                1,
                move |i| {
                    (
                        reqwest::Method::PATCH,
                        format!("{giant_path}?excludedAttributes=members"),
                        Some(patch(
                            json!([{"op": "add", "path": "members", "value": members(&chunks[i])}]),
                        )),
                    )
                },
            )
            .await
            };
            push(&mut report, &server, fill);
            (
                ids,
                Some(Groups {
                    small_id,
                    giant_id,
                    giant_path,
                    group_ids,
                }),
            )
        }
    };

    let ids = Arc::new(ids);
    let n = args.requests;
    if wants("post-user") {
        // New users, after the company's: a POST each, no existence check.
        let first = args.users;
        push(
            &mut report,
            &server,
            run(&server, "POST /Users (new user)", n, c, move |i| {
                (
                    reqwest::Method::POST,
                    "/Users".into(),
                    Some(user_body(first + i)),
                )
            })
            .await,
        );
    }
    // One-member PATCH (remove then add back the same member) on the giant and the small group.
    let made: Vec<(&str, &String)> = match &groups {
        Some(g) => vec![
            ("PATCH one member, giant group", &g.giant_id),
            ("PATCH one member, 10-member group", &g.small_id),
        ],
        None => Vec::new(),
    };
    for (label, gid) in made {
        if !wants("patch-member") {
            break;
        }
        let ids = ids.clone();
        let path = format!("/Groups/{gid}");
        let giant = groups.as_ref().is_some_and(|g| &g.giant_id == gid);
        let stats = run(&server, label, n, 1, move |i| {
            // Sequential on one group: alternately remove and re-add one member.
            let member = if giant {
                ids[(i / 2) % ids.len()].clone()
            } else {
                ids[(i / 2) % 10].clone()
            };
            let op = if i % 2 == 0 {
                json!([{"op": "remove", "path": format!("members[value eq \"{member}\"]")}])
            } else {
                json!([{"op": "add", "path": "members", "value": [{"value": member}]}])
            };
            (reqwest::Method::PATCH, path.clone(), Some(patch(op)))
        })
        .await;
        push(&mut report, &server, stats);
    }
    if wants("patch-active") {
        let ids = ids.clone();
        push(
            &mut report,
            &server,
            run(&server, "PATCH active false / true", n, c, move |i| {
                // Each user turned off, then back on, by the next request for it.
                let u = &ids[(i / 2) % ids.len()];
                let active = i % 2 == 1;
                (
                    reqwest::Method::PATCH,
                    format!("/Users/{u}"),
                    Some(patch(
                        json!([{"op": "replace", "path": "active", "value": active}]),
                    )),
                )
            })
            .await,
        );
    }
    if wants("put-user") {
        let ids = ids.clone();
        let users = args.users;
        push(
            &mut report,
            &server,
            run(&server, "PUT /Users/{id} (title changed)", n, c, move |i| {
                let k = i % users.min(ids.len());
                let mut body = user_body(k);
                body["title"] = json!(format!("Title {i}"));
                (
                    reqwest::Method::PUT,
                    format!("/Users/{}", ids[k]),
                    Some(body),
                )
            })
            .await,
        );
    }
    if wants("ceiling") {
        // The same HTTP, authentication and JSON path with no database read: what this
        // machine and load generator allow, against which the reads below compare.
        push(
            &mut report,
            &server,
            run(
                &server,
                "GET /ServiceProviderConfig (no database)",
                n,
                c,
                |_| (reqwest::Method::GET, "/ServiceProviderConfig".into(), None),
            )
            .await,
        );
    }
    if wants("get-user") {
        let ids = ids.clone();
        push(
            &mut report,
            &server,
            run(&server, "GET /Users/{id}", n, c, move |i| {
                (
                    reqwest::Method::GET,
                    format!("/Users/{}", ids[i % ids.len()]),
                    None,
                )
            })
            .await,
        );
    }
    if wants("filter-username") {
        let users = args.users;
        push(
            &mut report,
            &server,
            run(&server, "GET /Users?filter=userName eq", n, c, move |i| {
                (
                    reqwest::Method::GET,
                    format!(
                        "/Users?filter=userName%20eq%20%22user{:07}%40bench.example%22",
                        i % users
                    ),
                    None,
                )
            })
            .await,
        );
    }
    if wants("list-page") {
        let pages = (args.users / 100).max(1);
        push(
            &mut report,
            &server,
            run(&server, "GET /Users page of 100", n.min(500), c, move |i| {
                (
                    reqwest::Method::GET,
                    format!("/Users?startIndex={}&count=100", (i % pages) * 100 + 1),
                    None,
                )
            })
            .await,
        );
    }
    if let (true, Some(Groups { giant_path, .. })) = (wants("giant-group"), &groups) {
        push(
            &mut report,
            &server,
            run(
                &server,
                "GET giant group, excludedAttributes=members",
                n,
                c,
                {
                    let p = giant_path.clone();
                    move |_| {
                        (
                            reqwest::Method::GET,
                            format!("{p}?excludedAttributes=members"),
                            None,
                        )
                    }
                },
            )
            .await,
        );
        push(
            &mut report,
            &server,
            run(&server, "GET giant group with members", 20.min(n), 1, {
                let p = giant_path.clone();
                move |_| (reqwest::Method::GET, p.clone(), None)
            })
            .await,
        );
    }

    if let (true, Some(g)) = (wants("mapping"), &groups) {
        report.extend(mapping_scenario(&server, &g.group_ids).await?);
    }
    if wants("webhook") {
        let first = args.users + 2 * n;
        report.extend(webhooks::scenario(&server, first, n, c).await?);
    }

    let peak = server.peak_rss_mib();
    println!(
        "\n{:<56} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}  statuses",
        "scenario", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "peak MiB"
    );
    for s in &report {
        let j = s.json();
        // A total row sums other rows: it has no latencies of its own.
        let pct = |p: f64| match s.latencies.is_empty() {
            true => "-".to_string(),
            false => format!("{:.2}", s.percentile(p)),
        };
        println!(
            "{:<56} {:>9} {:>7} {:>10.0} {:>9} {:>9} {:>9} {:>9}  {}",
            s.name,
            s.requests,
            s.errors,
            s.rps(),
            pct(50.0),
            pct(90.0),
            pct(99.0),
            s.peak_rss
                .map(|m| format!("{m:.1}"))
                .unwrap_or_else(|| "-".into()),
            j["statuses"]
        );
    }
    if let Some(mib) = peak {
        println!("server peak RSS: {mib:.1} MiB");
    }
    let full = json!({
        "users": args.users, "concurrency": c, "database": if args.database_url.as_deref().is_some_and(|d| d.starts_with("postgres")) { "postgres" } else { "sqlite" },
        "server_peak_rss_mib": peak, "scenarios": report.iter().map(Stats::json).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string(&full)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&full)?)?;
    }
    if report.iter().any(|s| s.errors > 0) {
        bail!("some requests failed");
    }
    Ok(())
}
