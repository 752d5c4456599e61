//! Provisioning and teardown, end to end over real protocols: an approved request runs as jobs
//! against the simulated cloud, and against AWS as emulated by `moto_server` (Organizations,
//! STS, EKS over HTTP) with the Kubernetes bootstrap applied by the `kube` client to a real
//! kube-apiserver (`support::kube`), authenticated by EKS tokens. Also: partial failure and clean-up, retry from the failed
//! step, a worker killed with SIGKILL right after CreateCluster, and the DevOps environment.

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use slipway::auth::Role;
use slipway::provision::Cloud;
use slipway::provision::aws::{AwsCloud, AwsSettings};
use slipway::provision::simulated::SimulatedCloud;
use support::TestApp;
use support::kube::Kube;
use support::moto::Moto;

const ENGINEER: &[Role] = &[Role::PlatformEngineer, Role::Developer];

/// `shop` with the built-in blueprint approved and its backlog generated; `engineer` decides,
/// `dev` requests.
struct World {
    app: TestApp,
    engineer: String,
    reviewer: String,
    dev: String,
    dev_id: slipway::auth::UserId,
}

impl World {
    async fn new() -> World {
        World::with(TestApp::spawn().await).await
    }

    /// [`World::new`] with the app's clock fixed at `at` (RFC 3339).
    async fn at(at: &str) -> World {
        World::with(TestApp::spawn_at(at.parse().unwrap()).await).await
    }

    async fn with(app: TestApp) -> World {
        let (_, engineer) = app.user_with_token(ENGINEER, ENGINEER).await;
        let (reviewer_id, reviewer) = app.user_with_token(ENGINEER, ENGINEER).await;
        let (dev_id, dev) = app
            .user_with_token(&[Role::Developer], &[Role::Developer])
            .await;
        app.approved_platform("shop", &engineer, &reviewer, reviewer_id)
            .await;
        let res = app
            .api(
                Method::POST,
                "/api/v1/platforms/shop/backlog/generate",
                &engineer,
                Some(json!({})),
            )
            .await;
        assert!(res.status().is_success(), "{}", res.status());
        World {
            app,
            engineer,
            reviewer,
            dev,
            dev_id,
        }
    }

    /// Creates a team on `shop` through the API.
    async fn team(&self, body: Value) {
        let (status, team) = self
            .call(
                Method::POST,
                "/api/v1/platforms/shop/teams",
                &self.engineer,
                body,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{team}");
    }

    /// The hand-over of `id` as the holder of `token` sees it (`query`: `?team=…`).
    async fn handover(&self, id: &str, token: &str, query: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("/api/v1/environments/{id}/handover{query}"),
            token,
            json!(null),
        )
        .await
    }

    /// Worker tasks in this process, running every job kind against `cloud`.
    fn workers(&self, cloud: Cloud) -> slipway::jobs::worker::Workers {
        self.app.workers(cloud)
    }

    fn simulated(&self) -> Cloud {
        Cloud::Simulated(SimulatedCloud::new(self.app.pool.clone(), Duration::ZERO))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.app.call(method, path, token, body).await
    }

    /// A `dev` request by the developer, approved by the engineer; returns its id.
    async fn approved(&self, name: &str) -> String {
        let (status, created) = self
            .call(
                Method::POST,
                "/api/v1/platforms/shop/environments",
                &self.dev,
                json!({"environment_type": "dev", "name": name, "purpose": "Checkout integration tests"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/api/v1/environments/{id}/approve"),
                &self.engineer,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }

    /// Approves a new blueprint revision: revision 1 as `change` edits it.
    async fn approve_revision(&self, change: impl FnOnce(&mut Value)) {
        self.app
            .approve_revision("shop", &self.engineer, &self.reviewer, change)
            .await;
    }

    /// A small `perf` (ephemeral) request by the developer, approved automatically (it costs
    /// less than the type's limit); returns its id.
    async fn perf(&self, name: &str) -> String {
        let (status, created) = self
            .call(
                Method::POST,
                "/api/v1/platforms/shop/environments",
                &self.dev,
                json!({"environment_type": "perf", "name": name, "purpose": "Load test",
                       "parameters": {"instance_type": "m6i.xlarge", "min_nodes": 3, "max_nodes": 5, "data_services": []}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        // Approved without a person; a worker may have started provisioning it already.
        assert!(
            ["approved", "provisioning", "ready"].contains(&created["state"].as_str().unwrap()),
            "{created}"
        );
        created["id"].as_str().unwrap().to_owned()
    }

    /// The pooled accounts as the platform team sees them in the API: (name, state, leases).
    async fn pooled(&self) -> Vec<(String, String, i64)> {
        let (status, body) = self
            .call(
                Method::GET,
                "/api/v1/account-pool",
                &self.engineer,
                json!(null),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut accounts: Vec<(String, String, i64)> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().to_owned(),
                    a["state"].as_str().unwrap().to_owned(),
                    a["leases"].as_i64().unwrap(),
                )
            })
            .collect();
        accounts.sort();
        accounts
    }

    /// Runs the `accounts.pool` job once and waits for it to end.
    async fn top_up_pools(&self) {
        self.run_job(slipway::provision::pool::TOP_UP_JOB).await
    }

    /// Runs the periodic job `kind` once, now, and waits for it to complete.
    async fn run_job(&self, kind: &str) {
        let mut tx = self.app.pool.begin().await.unwrap();
        let id =
            slipway::jobs::queue::enqueue(&mut tx, &slipway::jobs::NewJob::new(kind, json!({})))
                .await
                .unwrap();
        tx.commit().await.unwrap();
        let started = Instant::now();
        loop {
            let state: String = sqlx::query_scalar("SELECT state::text FROM job WHERE id = $1")
                .bind(id)
                .fetch_one(&self.app.pool)
                .await
                .unwrap();
            if state == "completed" {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the {kind} job is {state}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The HTML of an environment's page, as the developer sees it.
    async fn page(&self, id: &str) -> String {
        self.app
            .client
            .get(self.app.url(&format!("/environments/{id}")))
            .bearer_auth(&self.dev)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn environment(&self, id: &str) -> Value {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/api/v1/environments/{id}"),
                &self.dev,
                json!(null),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls the API until the environment is in `state`; fails on another final state.
    async fn until_state(&self, id: &str, state: &str, within: Duration) -> Value {
        let started = Instant::now();
        loop {
            let env = self.environment(id).await;
            if env["state"] == state {
                return env;
            }
            assert!(
                started.elapsed() < within,
                "{id} did not become {state} within {within:?}; it is {}: {}",
                env["state"],
                serde_json::to_string_pretty(&env["job"]).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The environment once its current job has ended (completed, failed or cancelled).
    async fn until_job_finished(&self, id: &str, within: Duration) -> Value {
        let started = Instant::now();
        loop {
            let env = self.environment(id).await;
            if step_states(&env)
                .iter()
                .all(|(_, state)| state != "running" && state != "pending")
            {
                return env;
            }
            assert!(
                started.elapsed() < within,
                "the job of {id} did not end within {within:?}: {}",
                serde_json::to_string_pretty(&env["job"]).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Retry of a failed environment, by its requester.
    async fn retry(&self, id: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/api/v1/environments/{id}/retry"),
                &self.dev,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// The drift report of `id`, as the engineer reads it.
    async fn drift(&self, id: &str) -> Value {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/api/v1/environments/{id}/drift"),
                &self.engineer,
                json!(null),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Starts a maintenance job (`drift/check` or `reconcile`) as the engineer and waits for
    /// it to complete; returns the drift report then.
    async fn maintain(&self, id: &str, action: &str) -> Value {
        let (status, started) = self
            .call(
                Method::POST,
                &format!("/api/v1/environments/{id}/{action}"),
                &self.engineer,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        let job = &started["job_id"];
        let which = if action == "reconcile" {
            "reconcile"
        } else {
            "check"
        };
        let begun = Instant::now();
        loop {
            let report = self.drift(id).await;
            let run = &report[which];
            if &run["id"] == job && run["state"] == "completed" {
                return report;
            }
            assert!(
                run["state"] != "discarded" && begun.elapsed() < Duration::from_secs(120),
                "the {action} job did not complete: {report}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn teardown(&self, id: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/api/v1/environments/{id}/teardown"),
                &self.dev,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// What the plan applies and creates in the cluster, sorted.
fn plan_objects(plan: &Value) -> Vec<String> {
    let mut objects: Vec<String> = plan
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            [
                "kubernetes:apply",
                "kubernetes:create-secret",
                "kubernetes:copy-secret",
            ]
            .contains(&s["action"].as_str().unwrap())
        })
        .map(|s| s["resource"].as_str().unwrap().to_owned())
        .collect();
    objects.sort();
    objects
}

/// The tables with a row whose text contains `needle`.
async fn rows_containing(pool: &sqlx::PgPool, needle: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_name) FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for table in tables {
        // `quote_ident` made the name safe to format in.
        let query = format!("SELECT count(*) FROM {table} t WHERE t::text LIKE '%' || $1 || '%'");
        let found: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .bind(needle)
            .fetch_one(pool)
            .await
            .unwrap();
        if found > 0 {
            out.push(table);
        }
    }
    out
}

/// What Slipway made in the cluster, sorted like [`plan_objects`].
async fn applied_objects(kube: &Kube) -> Vec<String> {
    let mut objects: Vec<String> = kube
        .objects()
        .await
        .iter()
        .map(slipway::provision::cloud::describe_object)
        .collect();
    objects.sort();
    objects
}

async fn plan_of(w: &World, id: &str) -> Value {
    let (status, plan) = w
        .call(
            Method::GET,
            &format!("/api/v1/environments/{id}/plan"),
            &w.engineer,
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    plan
}

fn step_states(env: &Value) -> Vec<(String, String)> {
    env["job"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn the_simulated_cloud_takes_an_approved_request_to_ready_and_teardown_leaves_nothing() {
    let w = World::new().await;
    // A member of the platform requests it: one of the platform's own environments, which
    // deliver its backlog (a developer's scratch run does not: tests/exploit.rs).
    let shop: uuid::Uuid = sqlx::query_scalar("SELECT id FROM platform WHERE slug = 'shop'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    slipway::define::platforms::add_member(&w.app.pool, shop, w.dev_id)
        .await
        .unwrap();
    let workers = w.workers(w.simulated());
    let id = w.approved("checkout").await;
    let env = w.until_state(&id, "ready", Duration::from_secs(60)).await;

    let outputs = &env["outputs"];
    assert_eq!(outputs["cloud"], "simulated");
    assert_eq!(outputs["account_name"], "shop-checkout");
    assert_eq!(outputs["account_id"].as_str().unwrap().len(), 12);
    assert_eq!(outputs["cluster_name"], "shop-checkout");
    assert_eq!(outputs["region"], "eu-west-1");
    assert_eq!(
        outputs["namespaces"],
        json!(["apps", "observability", "data", "istio-system"])
    );
    assert_eq!(
        outputs["data_service_endpoints"]["kafka"],
        "kafka-kafka-bootstrap.data.svc.cluster.local:9093"
    );
    let kubeconfig = outputs["kubeconfig"].as_str().unwrap();
    assert!(kubeconfig.contains("command: aws") && !kubeconfig.contains("token:"));
    assert_eq!(
        step_states(&env),
        [
            "account",
            "access",
            "network",
            "cluster",
            "nodegroup",
            "addons",
            "kubernetes",
            "repository",
            "delivery",
            "outputs"
        ]
        .map(|s| (s.to_owned(), "completed".to_owned()))
    );
    assert!(
        env["expires_at"].is_null(),
        "a long-lived environment has no TTL"
    );

    // What the simulated cloud holds is what the plan says, once.
    let plan = plan_of(&w, &id).await;
    // The simulated cloud keeps the applied objects; generated Secrets are not stored anywhere.
    let objects: Vec<&Value> = plan
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "kubernetes:apply")
        .collect();
    let pool = &w.app.pool;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM simulated_resource WHERE kind = 'account'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM simulated_resource WHERE kind = 'cluster'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM simulated_resource WHERE kind = 'nodegroup'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM simulated_resource WHERE kind = 'object'"
        )
        .await,
        objects.len() as i64
    );

    // The environment's deliverables are done in the backlog; the rest is untouched.
    let done: Vec<String> =
        sqlx::query_scalar("SELECT key FROM backlog_item WHERE status = 'done' ORDER BY key")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        done,
        [
            "account:dev",
            "cluster:dev",
            "data:kafka:dev",
            "data:mongodb:dev",
            "logging:dev",
            "mesh:dev"
        ]
    );
    let (_, inbox) = w
        .call(Method::GET, "/api/v1/notifications", &w.dev, json!(null))
        .await;
    assert!(
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "ready"),
        "the requester hears it is ready: {inbox}"
    );

    w.teardown(&id).await;
    w.until_state(&id, "torn_down", Duration::from_secs(60))
        .await;
    // The last step reports `torn_down` before the job records the step itself as completed.
    let env = w.until_job_finished(&id, Duration::from_secs(10)).await;
    assert_eq!(
        step_states(&env),
        [
            "delivery",
            "kubernetes",
            "nodegroup",
            "cluster",
            "network",
            "account",
            "finish"
        ]
        .map(|s| (s.to_owned(), "completed".to_owned()))
    );
    // The platform's organizational units stay: other environments of the platform use them.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM simulated_resource
             WHERE kind <> 'unit' AND (gone_at IS NULL OR gone_at > now())"
        )
        .await,
        0,
        "nothing is left in the simulated cloud"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

/// Ephemeral environments lease accounts from the platform's pool (3 in the built-in
/// blueprint): the pool grows only while all its accounts are leased and it has room, a fourth
/// environment waits for one to be given back, teardowns give accounts back emptied and never
/// close one, the `accounts.pool` job fills the pool to its size, and twenty environments one
/// after another use the same three accounts. Against the simulated
/// cloud; the AWS test below checks the clean-up in a real account layout.
#[tokio::test]
async fn ephemeral_environments_reuse_pooled_accounts_and_never_close_one() {
    let w = World::new().await;
    let workers = w.workers(w.simulated());
    let first = w.perf("load-1").await;
    let env = w
        .until_state(&first, "ready", Duration::from_secs(60))
        .await;
    assert_eq!(env["outputs"]["account_name"], "shop-pool-1");
    assert_eq!(env["outputs"]["pooled_account"], "leased");
    assert_eq!(
        w.pooled().await,
        [("shop-pool-1".to_owned(), "leased".to_owned(), 1)]
    );
    // The top-up job fills the pool to its size ahead of demand.
    w.top_up_pools().await;
    assert_eq!(
        w.pooled().await,
        [
            ("shop-pool-1".to_owned(), "leased".to_owned(), 1),
            ("shop-pool-2".to_owned(), "available".to_owned(), 0),
            ("shop-pool-3".to_owned(), "available".to_owned(), 0),
        ]
    );

    let mut ids = vec![first];
    for name in ["load-2", "load-3"] {
        ids.push(w.perf(name).await);
    }
    for id in &ids {
        w.until_state(id, "ready", Duration::from_secs(60)).await;
    }
    // All three are leased: a fourth waits in its account step, saying for what.
    let waiting = w.perf("load-4").await;
    let started = Instant::now();
    while !w
        .page(&waiting)
        .await
        .contains("an account of the shop pool")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the fourth environment does not say it waits for an account"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.teardown(&ids[0]).await;
    let torn = w
        .until_state(&ids[0], "torn_down", Duration::from_secs(60))
        .await;
    assert_eq!(torn["outputs"]["pooled_account"], "returned");
    assert!(torn["outputs"].get("account_closure").is_none(), "{torn}");
    let env = w
        .until_state(&waiting, "ready", Duration::from_secs(60))
        .await;
    assert_eq!(
        env["outputs"]["account_name"], "shop-pool-1",
        "the given-back account"
    );
    ids.push(waiting);
    for id in &ids[1..] {
        w.teardown(id).await;
        w.until_state(id, "torn_down", Duration::from_secs(60))
            .await;
    }

    assert_eq!(
        w.pooled().await,
        [
            ("shop-pool-1".to_owned(), "available".to_owned(), 2),
            ("shop-pool-2".to_owned(), "available".to_owned(), 1),
            ("shop-pool-3".to_owned(), "available".to_owned(), 1),
        ]
    );
    // Twenty more, requested, used and torn down one after another: the same three accounts,
    // the one given back longest ago leased first.
    let mut used = vec![];
    for n in 1..=20 {
        let id = w.perf(&format!("run-{n}")).await;
        let env = w.until_state(&id, "ready", Duration::from_secs(60)).await;
        used.push(env["outputs"]["account_name"].as_str().unwrap().to_owned());
        w.teardown(&id).await;
        let env = w
            .until_state(&id, "torn_down", Duration::from_secs(60))
            .await;
        assert_eq!(env["outputs"]["pooled_account"], "returned");
    }
    assert!(
        used.windows(3)
            .all(|w| w[0] != w[1] && w[1] != w[2] && w[0] != w[2]),
        "the accounts take turns: {used:?}"
    );
    let leases: i64 = w.pooled().await.iter().map(|(_, _, n)| n).sum();
    assert_eq!(leases, 24);
    let pool = &w.app.pool;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM simulated_resource WHERE kind = 'account' AND gone_at IS NULL"
        )
        .await,
        3,
        "twenty-four environments, three accounts, none closed"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM simulated_resource
             WHERE kind NOT IN ('unit', 'account') AND (gone_at IS NULL OR gone_at > now())"
        )
        .await,
        0,
        "the accounts are empty"
    );
    // The page shows the pool to the platform team.
    let page = w
        .app
        .client
        .get(w.app.url("/account-pool"))
        .bearer_auth(&w.engineer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("shop-pool-3") && page.contains("badge-available"));

    // The database refuses what the pool's rules do not allow, whatever the code does: an
    // available account handed to an environment without a lease, or a lease skipping the
    // clean-up.
    let lessee = uuid::Uuid::parse_str(&ids[1]).unwrap();
    let refused = |sql: &'static str| async move {
        sqlx::query(sql)
            .bind(lessee)
            .execute(pool)
            .await
            .unwrap_err()
            .to_string()
    };
    assert!(
        refused("UPDATE pooled_account SET environment_id = $1 WHERE name = 'shop-pool-2'")
            .await
            .contains("changes hands only by a lease")
    );
    sqlx::query("UPDATE pooled_account SET state = 'leased', environment_id = $1 WHERE name = 'shop-pool-2'")
        .bind(lessee)
        .execute(pool)
        .await
        .unwrap();
    assert!(
        refused("UPDATE pooled_account SET state = 'available', environment_id = NULL WHERE environment_id = $1")
            .await
            .contains("cannot go from leased to available")
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

/// Version currency, with the clock fixed the day after Kubernetes 1.34 left EKS standard
/// support: a cluster still on 1.34 is flagged extended with what that costs, one on the
/// template's 1.35 is in standard support, and the revision pinning 1.34 says so beside the
/// field.
#[tokio::test]
async fn the_maintain_page_flags_a_cluster_past_standard_support_with_its_extended_cost() {
    let w = World::at("2026-12-03T09:00:00Z").await;
    w.approve_revision(|doc| doc["environment_types"][0]["kubernetes_version"] = json!("1.34"))
        .await;
    let workers = w.workers(w.simulated());
    let old = w.approved("ledger").await;
    let current = w.perf("load").await;
    for id in [&old, &current] {
        w.until_state(id, "ready", Duration::from_secs(60)).await;
    }
    let (status, body) = w
        .call(
            Method::GET,
            "/api/v1/platforms/shop/maintain",
            &w.engineer,
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cluster = |name: &str| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    let ledger = cluster("ledger");
    assert_eq!(ledger["environment_id"], old.as_str());
    assert_eq!(ledger["kubernetes_version"], "1.34");
    assert_eq!(ledger["support"], "extended");
    assert_eq!(ledger["standard_support_ends"], "2026-12-02");
    assert_eq!(ledger["extended_support_ends"], "2027-12-02");
    assert_eq!(ledger["days_left"], 364);
    assert_eq!(ledger["hourly_extra_usd"], 0.5);
    assert_eq!(ledger["revision"], 2);
    assert!(ledger["drift"].is_null(), "not checked, not empty");
    assert_eq!(
        ledger["addons_behind"],
        json!([]),
        "built with today's pins"
    );
    let load = cluster("load");
    assert_eq!(load["kubernetes_version"], "1.35");
    assert_eq!(load["support"], "standard");
    assert_eq!(load["days_left"], 114);
    assert_eq!(load["hourly_extra_usd"], 0.0);

    // An environment built by an older Slipway runs an older Istio.
    let pinned = slipway::provision::versions::ISTIOD.version;
    sqlx::query(
        "UPDATE environment SET plan = replace(plan::text, $2, $3)::jsonb WHERE id = $1::uuid",
    )
    .bind(&old)
    .bind(format!("pilot:{pinned}"))
    .bind("pilot:1.27.0")
    .execute(&w.app.pool)
    .await
    .unwrap();
    let (_, body) = w
        .call(
            Method::GET,
            "/api/v1/platforms/shop/maintain",
            &w.engineer,
            json!(null),
        )
        .await;
    let behind = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ledger")
        .unwrap()["addons_behind"]
        .clone();
    assert_eq!(
        behind,
        json!([format!("istiod 1.27.0 → {pinned}")]),
        "{body}"
    );

    let html = |path: &'static str| async {
        w.app
            .client
            .get(w.app.url(path))
            .bearer_auth(&w.engineer)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let page = html("/platforms/shop/maintain").await;
    assert!(page.contains("+$0.50 per hour ($365 per month)"), "{page}");
    assert!(page.contains("badge-support-extended"));
    let revision = html("/platforms/shop/blueprints/2").await;
    assert!(
        revision.contains("Kubernetes 1.34 left EKS standard support on 2026-12-02"),
        "{revision}"
    );
    assert!(revision.contains("environment_types[0].kubernetes_version"));
    let (_, json) = w
        .call(
            Method::GET,
            "/api/v1/platforms/shop/blueprints/2",
            &w.engineer,
            json!(null),
        )
        .await;
    assert_eq!(
        json["warnings"][0]["field"], "environment_types[0].kubernetes_version",
        "{json}"
    );
    let (_, json) = w
        .call(
            Method::GET,
            "/api/v1/platforms/shop/blueprints/1",
            &w.engineer,
            json!(null),
        )
        .await;
    assert_eq!(json["warnings"], json!([]), "the template pins 1.35");
    workers.shutdown(Duration::from_secs(5)).await;
}

/// The AWS provider against moto, with the member accounts' clusters' Kubernetes API served by
/// `kube`.
async fn aws_cloud(moto: &Moto, kube: &Kube) -> Cloud {
    aws_cloud_through(moto, kube, &moto.url).await
}

/// [`aws_cloud`], reaching AWS through `url` (a proxy in front of moto).
async fn aws_cloud_through(moto: &Moto, kube: &Kube, url: &str) -> Cloud {
    moto.create_organization().await;
    let settings = AwsSettings {
        kube_endpoint_override: Some(kube.url.clone()),
        kube_endpoint_ca: Some(kube.ca_pem()),
        ..slipway::app::config::Config::default().aws
    };
    let config = moto
        .sdk_config()
        .await
        .into_builder()
        .endpoint_url(url)
        .build();
    Cloud::Aws(Box::new(AwsCloud::from_sdk_config(config, settings)))
}

fn account_of<'a>(
    accounts: &'a [(String, String, String)],
    name: &str,
) -> Vec<&'a (String, String, String)> {
    accounts.iter().filter(|(n, _, _)| n == name).collect()
}

/// An IAM policy document as IAM returns it: URL-encoded JSON (moto may leave it plain).
fn policy_json(document: &str) -> Value {
    let bytes = document.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).unwrap();
                decoded.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&decoded).unwrap()
}

#[tokio::test]
async fn aws_provisioning_creates_exactly_the_planned_resources_and_teardown_removes_them() {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let w = World::new().await;
    let workers = w.workers(aws_cloud(&moto, &kube).await);
    let id = w.approved("payments").await;
    let env = w.until_state(&id, "ready", Duration::from_secs(90)).await;
    let plan = plan_of(&w, &id).await;

    // One account, with the plan's name and Slipway's tags, and one cluster with one node group.
    let accounts = moto.accounts().await;
    let ours = account_of(&accounts, "shop-payments");
    assert_eq!(ours.len(), 1, "{accounts:?}");
    let (_, account, state) = ours[0];
    assert_eq!(state, "ACTIVE");
    assert_eq!(env["outputs"]["account_id"], account.as_str());
    assert_eq!(
        moto.unit_path_of(account).await,
        ["shop", "long-lived"],
        "the account is in its platform's unit for long-lived environments"
    );
    assert_eq!(env["outputs"]["organizational_unit"], "shop/long-lived");
    assert_eq!(env["outputs"]["cloud"], "AWS");
    // Its own VPC: the platform range's first /16, subnets in two zones, a private endpoint.
    let ec2 = moto.ec2_in(account).await;
    let ours = [("tag:slipway:environment-id", id.as_str())];
    let vpcs = ec2.describe("DescribeVpcs", "vpcSet", &ours).await.unwrap();
    assert_eq!(vpcs.len(), 1, "one VPC");
    assert_eq!(vpcs[0].get("cidrBlock").unwrap(), "10.64.0.0/16");
    let subnets = ec2.describe_subnets(&ours).await.unwrap();
    assert_eq!(subnets.len(), 4, "a private and a public subnet per zone");
    let zones: std::collections::BTreeSet<&str> = subnets
        .iter()
        .map(|s| s.availability_zone.as_str())
        .collect();
    assert_eq!(zones.len(), 2, "two zones: {zones:?}");
    let nats = ec2
        .describe("DescribeNatGateways", "natGatewaySet", &ours)
        .await
        .unwrap();
    assert_eq!(nats.len(), 1, "one NAT gateway");
    let described = moto
        .eks_in(account)
        .await
        .describe_cluster()
        .name("shop-payments")
        .send()
        .await
        .unwrap();
    let vpc_config = described.cluster().unwrap().resources_vpc_config().unwrap();
    assert!(vpc_config.endpoint_private_access());
    assert!(
        !vpc_config.endpoint_public_access(),
        "the template lists no public ranges: private only"
    );
    let mut cluster_subnets = vpc_config.subnet_ids().to_vec();
    cluster_subnets.sort();
    let mut all: Vec<String> = subnets.iter().map(|s| s.id.clone()).collect();
    all.sort();
    assert_eq!(cluster_subnets, all);
    assert_eq!(
        moto.clusters_in(account).await,
        [(
            "shop-payments".to_owned(),
            vec!["shop-payments-nodes".to_owned()]
        )]
    );

    // The cluster runs with the roles the network step made, in the default VPC's subnets.
    let described = moto
        .eks_in(account)
        .await
        .describe_cluster()
        .name("shop-payments")
        .send()
        .await
        .unwrap();
    let cluster = described.cluster().unwrap();
    assert_eq!(
        cluster.role_arn().unwrap(),
        format!("arn:aws:iam::{account}:role/SlipwayEksClusterRole")
    );
    let subnets = cluster.resources_vpc_config().unwrap().subnet_ids();
    assert!(subnets.len() >= 2, "{subnets:?}");
    assert_eq!(env["outputs"]["network"]["subnets"], json!(subnets));

    // The EKS add-ons, the VPC CNI enforcing NetworkPolicies.
    let eks = moto.eks_in(account).await;
    let addons = eks
        .list_addons()
        .cluster_name("shop-payments")
        .send()
        .await
        .unwrap();
    assert_eq!(
        addons.addons(),
        [
            "aws-ebs-csi-driver",
            "cert-manager",
            "coredns",
            "eks-pod-identity-agent",
            "kube-proxy",
            "metrics-server",
            "vpc-cni"
        ]
    );
    let cni = eks
        .describe_addon()
        .cluster_name("shop-payments")
        .addon_name("vpc-cni")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cni.addon().unwrap().configuration_values(),
        Some(r#"{"enableNetworkPolicy":"true"}"#)
    );

    // Fluent Bit and the collector get their AWS access from EKS Pod Identity: a role each that
    // only the Pod Identity agent may take, allowed to write this environment's logs and no more.
    let associations = eks
        .list_pod_identity_associations()
        .cluster_name("shop-payments")
        .send()
        .await
        .unwrap();
    let mut service_accounts = vec![];
    for summary in associations.associations() {
        let association = eks
            .describe_pod_identity_association()
            .cluster_name("shop-payments")
            .association_id(summary.association_id().unwrap())
            .send()
            .await
            .unwrap()
            .association
            .unwrap();
        let role_name = association.role_arn().unwrap().rsplit('/').next().unwrap();
        service_accounts.push(format!(
            "{}/{} {role_name}",
            association.namespace().unwrap(),
            association.service_account().unwrap()
        ));
        let iam = moto.iam_in(account).await;
        let role = iam.get_role().role_name(role_name).send().await.unwrap();
        let trust = policy_json(role.role().unwrap().assume_role_policy_document().unwrap());
        assert_eq!(
            trust["Statement"][0]["Principal"]["Service"],
            "pods.eks.amazonaws.com"
        );
        assert_eq!(
            trust["Statement"][0]["Action"],
            json!(["sts:AssumeRole", "sts:TagSession"])
        );
        let inline = iam
            .get_role_policy()
            .role_name(role_name)
            .policy_name("slipway")
            .send()
            .await
            .unwrap();
        let policy = policy_json(inline.policy_document());
        assert_eq!(
            policy["Statement"][0]["Resource"][1],
            format!("arn:aws:logs:eu-west-1:{account}:log-group:/slipway/shop/payments"),
            "{policy}"
        );
    }
    service_accounts.sort();
    assert_eq!(
        service_accounts,
        [
            "observability/fluent-bit SlipwayFluentBit",
            "observability/otel-collector SlipwayOtelCollector"
        ]
    );

    // The dry-run plan is what ran: its steps are the job's steps, its objects what was applied.
    let mut planned_steps: Vec<&str> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    planned_steps.dedup();
    let ran: Vec<(String, String)> = step_states(&env);
    assert_eq!(
        ran.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        planned_steps
    );
    assert_eq!(plan[0]["resource"], "shop-payments");
    assert_eq!(plan[0]["details"]["email"], "shop-payments@example.com");
    assert_eq!(applied_objects(&kube).await, plan_objects(&plan));
    let peer = kube
        .object(
            "security.istio.io/v1",
            "PeerAuthentication",
            Some("istio-system"),
            "default",
        )
        .await
        .unwrap();
    assert_eq!(peer["spec"]["mtls"]["mode"], "STRICT");
    // The data services' credentials exist in the cluster, and nowhere in Slipway's database.
    let secret = plan
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "kubernetes:create-secret")
        .expect("the plan generates the data services' credentials");
    let (namespace, name) = (
        secret["details"]["namespace"].as_str().unwrap(),
        secret["details"]["name"].as_str().unwrap(),
    );
    let live = kube
        .object("v1", "Secret", Some(namespace), name)
        .await
        .expect("the generated Secret is in the cluster");
    let encoded = live["data"]["password"].as_str().unwrap();
    let password = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap(),
    )
    .unwrap();
    assert!(password.len() >= 40, "a long random value");
    assert_eq!(
        rows_containing(&w.app.pool, &password).await,
        Vec::<String>::new(),
        "no table holds the generated password"
    );
    // Kafka clients in the team namespace get Strimzi's cluster CA to trust the brokers' TLS.
    let ca = kube
        .object("v1", "Secret", Some("apps"), "kafka-cluster-ca")
        .await
        .expect("Strimzi's cluster CA is copied into the team namespace");
    let ca_crt = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        ca["data"]["ca.crt"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(ca_crt, support::kube::STRIMZI_STAND_IN_CA.as_bytes());
    assert!(
        ca["data"].get("ca.password").is_none(),
        "only the certificate"
    );
    // The API server only knows the EKS token webhook and client certificates; Slipway holds
    // no certificate, so every object above came in with a token STS vouched for.
    let apps = kube.object("v1", "Namespace", None, "apps").await.unwrap();
    assert_eq!(apps["metadata"]["labels"]["istio-injection"], "enabled");
    assert_eq!(apps["metadata"]["managedFields"][0]["manager"], "slipway");

    w.teardown(&id).await;
    w.until_state(&id, "torn_down", Duration::from_secs(90))
        .await;
    assert!(
        moto.clusters_in(account).await.is_empty(),
        "no cluster is left"
    );
    for (action, set) in [
        ("DescribeVpcs", "vpcSet"),
        ("DescribeSubnets", "subnetSet"),
        ("DescribeInternetGateways", "internetGatewaySet"),
        ("DescribeAddresses", "addressesSet"),
        ("DescribeRouteTables", "routeTableSet"),
    ] {
        assert!(
            ec2.describe(action, set, &ours).await.unwrap().is_empty(),
            "{action}: nothing of the VPC is left"
        );
    }
    let accounts = moto.accounts().await;
    let (_, _, state) = account_of(&accounts, "shop-payments")[0];
    assert_ne!(state, "ACTIVE", "the account is closed");
    assert!(
        kube.objects().await.is_empty(),
        "no Kubernetes object is left"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_partial_failure_leaves_the_environment_failed_and_cleaning_up_leaves_nothing_behind() {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    kube.refuse_writes_of("networking.k8s.io", "networkpolicies")
        .await;
    let w = World::new().await;
    let workers = w.workers(aws_cloud(&moto, &kube).await);
    let id = w.approved("orders").await;
    let env = w.until_state(&id, "failed", Duration::from_secs(90)).await;
    let steps = step_states(&env);
    assert_eq!(steps[4], ("nodegroup".to_owned(), "completed".to_owned()));
    assert_eq!(steps[5], ("addons".to_owned(), "completed".to_owned()));
    assert_eq!(steps[6], ("kubernetes".to_owned(), "failed".to_owned()));
    assert!(
        env["job"]["steps"][6]["error"]
            .as_str()
            .unwrap()
            .contains("forbidden"),
        "{}",
        env["job"]["steps"][6]
    );
    let accounts = moto.accounts().await;
    let (_, account, _) = account_of(&accounts, "shop-orders")[0].clone();
    assert_eq!(moto.clusters_in(&account).await.len(), 1);
    assert!(
        !kube.objects().await.is_empty(),
        "the namespaces were applied before the failure"
    );

    // The policy that refused the writes is lifted; then "Clean up what was created".
    kube.allow_writes_of("networking.k8s.io", "networkpolicies")
        .await;
    w.teardown(&id).await;
    w.until_state(&id, "torn_down", Duration::from_secs(90))
        .await;
    assert!(moto.clusters_in(&account).await.is_empty());
    let accounts = moto.accounts().await;
    assert_ne!(account_of(&accounts, "shop-orders")[0].2, "ACTIVE");
    let left = kube.objects().await;
    assert!(left.is_empty(), "{left:?}");
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_failed_environment_retries_from_the_failed_step() {
    let w = World::new().await;
    sqlx::query(
        "INSERT INTO simulated_fault (operation, remaining, message)
         VALUES ('eks:CreateNodegroup', 1, 'InsufficientCapacity in eu-west-1a')",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let workers = w.workers(w.simulated());
    let id = w.approved("search").await;
    let env = w.until_state(&id, "failed", Duration::from_secs(60)).await;
    assert!(
        env["job"]["steps"][4]["error"]
            .as_str()
            .unwrap()
            .contains("InsufficientCapacity")
    );
    let page = w.page(&id).await;
    assert!(
        page.contains("Retry from the failed step") && page.contains("Clean up what was created")
    );

    w.retry(&id).await;
    let env = w.until_state(&id, "ready", Duration::from_secs(60)).await;
    let account = &env["job"]["steps"][0];
    assert_eq!(
        account["attempt"], 1,
        "the account step did not run again: {account}"
    );
    assert_eq!(
        count(
            &w.app.pool,
            "SELECT count(*) FROM simulated_resource WHERE kind = 'account'"
        )
        .await,
        1
    );
    let (status, _) = w
        .call(
            Method::POST,
            &format!("/api/v1/environments/{id}/retry"),
            &w.dev,
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "only a failed environment is retried"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

/// A CreateAccount request that fails for a reason a person must fix (the root e-mail address
/// is taken) fails the environment saying what to do; Retry asks Organizations again with a
/// new request instead of following the failed one.
#[tokio::test]
async fn retry_after_a_failed_account_request_asks_for_the_account_again() {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let proxy = support::moto::FaultProxy::start(&moto.url, 1, 0).await;
    proxy.settling(support::moto::Settling {
        first_account_request_fails: Some("EMAIL_ALREADY_EXISTS"),
        ..Default::default()
    });
    let w = World::new().await;
    let workers = w.workers(aws_cloud_through(&moto, &kube, &proxy.url).await);
    let id = w.approved("billing").await;
    let env = w.until_state(&id, "failed", Duration::from_secs(60)).await;
    let error = env["job"]["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("root e-mail address")
            && error.contains("is in use by another AWS account")
            && error.contains("choose another environment name"),
        "the error says what is wrong and what to do: {error}"
    );
    assert!(account_of(&moto.accounts().await, "shop-billing").is_empty());

    w.retry(&id).await;
    w.until_state(&id, "ready", Duration::from_secs(90)).await;
    assert_eq!(
        account_of(&moto.accounts().await, "shop-billing").len(),
        1,
        "the retry made the account, once"
    );
    assert_eq!(
        proxy.injected().values().sum::<usize>(),
        1,
        "the one failed request, not followed again"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

/// AWS's closure quota refuses to close the account at teardown: the environment is torn down
/// all the same, the account queued; the periodic `accounts.close` job closes it once AWS lets
/// it.
#[tokio::test]
async fn a_closure_the_quota_defers_never_blocks_a_teardown_and_happens_later() {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let proxy = support::moto::FaultProxy::start(&moto.url, 1, 0).await;
    proxy.settling(support::moto::Settling {
        close_account_quota: 1,
        ..Default::default()
    });
    let w = World::new().await;
    let workers = w.workers(aws_cloud_through(&moto, &kube, &proxy.url).await);
    let id = w.approved("ledger").await;
    w.until_state(&id, "ready", Duration::from_secs(90)).await;
    w.teardown(&id).await;
    let env = w
        .until_state(&id, "torn_down", Duration::from_secs(90))
        .await;
    assert_eq!(env["outputs"]["account_closure"], "queued");
    let account = env["outputs"]["account_id"].as_str().unwrap().to_owned();
    let state_of = |accounts: Vec<(String, String, String)>| {
        accounts
            .into_iter()
            .find(|(_, id, _)| *id == account)
            .map(|(_, _, state)| state)
            .unwrap()
    };
    assert_eq!(state_of(moto.accounts().await), "ACTIVE", "not closed yet");

    let mut tx = w.app.pool.begin().await.unwrap();
    slipway::jobs::queue::enqueue(
        &mut tx,
        &slipway::jobs::NewJob::new(slipway::provision::closures::CLOSE_QUEUED_JOB, json!({})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let started = Instant::now();
    loop {
        let closed: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT closed_at FROM account_closure WHERE account_id = $1")
                .bind(&account)
                .fetch_one(&w.app.pool)
                .await
                .unwrap();
        if closed.is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(state_of(moto.accounts().await), "ACTIVE", "closed now");
    assert_eq!(
        w.environment(&id).await["outputs"]["account_closure"],
        "closed"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

/// Credentials of `role`, assumed through moto's STS as a person of that team would.
async fn assumed(moto: &Moto, role: &str) -> aws_credential_types::Credentials {
    let out = aws_sdk_sts::Client::new(&moto.sdk_config().await)
        .assume_role()
        .role_arn(role)
        .role_session_name("someone")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "assumed",
    )
}

/// Creates a ConfigMap in `namespace` as whoever `client` is: the status code of a refusal.
async fn create_config_map(client: &kube::Client, namespace: &str) -> Result<(), u16> {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), namespace);
    let map: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"generateName": "probe-"}, "data": {"who": "team"}
    }))
    .unwrap();
    match api.create(&kube::api::PostParams::default(), &map).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.code),
        Err(e) => panic!("{e}"),
    }
}

/// Creates each object of the multi-document YAML `manifests` as `client`: how many, or the
/// first refusal's status code.
async fn apply_as(client: &kube::Client, manifests: &str) -> Result<usize, u16> {
    use kube::api::{DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let mut created = 0;
    for document in manifests.split("\n---\n") {
        let object: DynamicObject = yaml_serde::from_str(document).unwrap();
        let types = object.types.clone().unwrap();
        let (group, version) = match types.api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), types.api_version.clone()),
        };
        let resource = ApiResource {
            group,
            version,
            api_version: types.api_version.clone(),
            kind: types.kind.clone(),
            plural: format!("{}s", types.kind.to_lowercase()),
        };
        let namespace = object.metadata.namespace.clone().unwrap();
        let api: kube::Api<DynamicObject> =
            kube::Api::namespaced_with(client.clone(), &namespace, &resource);
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => created += 1,
            Err(kube::Error::Api(status)) => return Err(status.code),
            Err(e) => panic!("{e}"),
        }
    }
    Ok(created)
}

/// Teams reach their own namespaces through EKS access entries and the hand-over (moto's EKS
/// and STS, the real kube-apiserver with its token webhook): the cluster is created in
/// authentication mode API with Slipway as its admin; the platform team's role is cluster admin;
/// each team made on the Teams page gets its namespace, and its role maps to its group, which
/// may act there and nowhere else (not in the other team's, not in `data`); a role without an
/// entry is refused. The hand-over gives each reader their team's kubeconfig (its role, no
/// secret), namespaces and quota; a developer outside the teams sees nothing; after teardown
/// only a record is left.
#[tokio::test]
async fn teams_reach_their_own_namespaces_through_access_entries_and_the_hand_over() {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let w = World::new().await;
    let platform_team = "arn:aws:iam::123456789012:role/platform-team";
    let checkout = "arn:aws:iam::123456789012:role/teams/checkout-developers";
    let search = "arn:aws:iam::123456789012:role/search-developers";
    w.approve_revision(|doc| doc["access"] = json!({ "platform_team_role_arn": platform_team }))
        .await;
    let (searcher_id, searcher) = w
        .app
        .user_with_token(&[Role::Developer], &[Role::Developer])
        .await;
    let (_, outsider_dev) = w
        .app
        .user_with_token(&[Role::Developer], &[Role::Developer])
        .await;
    w.team(json!({"name": "checkout", "members": [w.dev_id.0], "aws_role_arn": checkout}))
        .await;
    w.team(json!({"name": "search", "members": [searcher_id.0], "aws_role_arn": search, "namespaces": ["search", "search-batch"]}))
        .await;
    let git = support::git::GitServer::start().await;
    let config = slipway::app::config::Config {
        git: Some(git.https()),
        ..support::worker_config()
    };
    let workers = w.app.workers_with(aws_cloud(&moto, &kube).await, config);
    let id = w.approved("ledger").await;
    let plan = plan_of(&w, &id).await;
    let entries: Vec<&Value> = plan
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "eks:CreateAccessEntry")
        .collect();
    assert_eq!(entries.len(), 3, "{plan}");
    let env = w.until_state(&id, "ready", Duration::from_secs(120)).await;
    let account = env["outputs"]["account_id"].as_str().unwrap();

    let eks = moto.eks_in(account).await;
    let mut principals = eks
        .list_access_entries()
        .cluster_name("shop-ledger")
        .send()
        .await
        .unwrap()
        .access_entries()
        .to_vec();
    principals.sort();
    let mut expected = [
        format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole"),
        platform_team.to_owned(),
        checkout.to_owned(),
        search.to_owned(),
    ];
    expected.sort();
    assert_eq!(
        principals, expected,
        "Slipway as the creator, the platform team and the two teams"
    );
    let team_entry = eks
        .describe_access_entry()
        .cluster_name("shop-ledger")
        .principal_arn(checkout)
        .send()
        .await
        .unwrap();
    assert_eq!(
        team_entry.access_entry().unwrap().kubernetes_groups(),
        ["shop:team:checkout"]
    );

    let endpoint = slipway::provision::kubernetes::ClusterEndpoint {
        url: kube.url.clone(),
        ca_pem: Some(kube.ca_pem()),
        cluster_name: "shop-ledger".into(),
        region: support::moto::REGION.into(),
    };
    let as_role =
        |credentials| slipway::provision::kubernetes::client(&endpoint, &credentials).unwrap();
    let checkout_team = as_role(assumed(&moto, checkout).await);
    assert_eq!(
        create_config_map(&checkout_team, "checkout").await,
        Ok(()),
        "its namespace"
    );
    assert_eq!(
        create_config_map(&checkout_team, "search").await,
        Err(403),
        "the other team's"
    );
    assert_eq!(
        create_config_map(&checkout_team, "data").await,
        Err(403),
        "the data services'"
    );
    assert_eq!(
        create_config_map(&checkout_team, "kube-system").await,
        Err(403)
    );
    let search_team = as_role(assumed(&moto, search).await);
    assert_eq!(
        create_config_map(&search_team, "search-batch").await,
        Ok(())
    );
    assert_eq!(create_config_map(&search_team, "checkout").await, Err(403));
    let admins = as_role(assumed(&moto, platform_team).await);
    assert_eq!(
        create_config_map(&admins, "data").await,
        Ok(()),
        "cluster admin"
    );
    let outsider = as_role(assumed(&moto, "arn:aws:iam::123456789012:role/someone-else").await);
    assert_eq!(
        create_config_map(&outsider, "checkout").await,
        Err(401),
        "no access entry"
    );

    // The hand-over: each reader their own team's.
    let (status, mine) = w.handover(&id, &w.dev, "").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["team"], "checkout");
    assert_eq!(mine["namespaces"], json!(["checkout"]));
    assert_eq!(mine["quotas"]["checkout"]["pods"], "180", "{mine}");
    let kubeconfig = mine["kubeconfig"].as_str().unwrap();
    assert!(
        kubeconfig.contains(&format!("--role-arn, {checkout}]")),
        "{kubeconfig}"
    );
    assert!(!kubeconfig.contains("token:"), "no secret in it");
    assert_eq!(mine["expires_at"], Value::Null, "long-lived");
    assert!(
        mine["links"]["logs"]
            .as_str()
            .unwrap()
            .contains("log-group/$252Fslipway$252Fshop$252Fledger"),
        "{mine}"
    );
    let (status, refused) = w.handover(&id, &w.dev, "?team=search").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "team");
    // The searcher sees the environment someone else requested, because their team uses it.
    let (status, theirs) = w.handover(&id, &searcher, "").await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(theirs["namespaces"], json!(["search", "search-batch"]));
    assert!(theirs["kubeconfig"].as_str().unwrap().contains(search));
    let (status, listed) = w
        .call(Method::GET, "/api/v1/environments", &searcher, json!(null))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"][0]["id"], id.as_str(), "{listed}");
    let (status, _) = w.handover(&id, &outsider_dev, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not in a team of it");
    let (status, admin_view) = w.handover(&id, &w.engineer, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(admin_view["team"], Value::Null, "the platform team's view");
    assert!(
        admin_view["kubeconfig"]
            .as_str()
            .unwrap()
            .contains(platform_team)
    );
    let markdown = w
        .app
        .get_as(
            &format!("/api/v1/environments/{id}/handover?format=markdown"),
            &w.dev,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        markdown.starts_with("# shop/ledger for team checkout"),
        "{markdown}"
    );
    assert!(markdown.contains(checkout));

    // Onboarding: the team's service lands in its repository, and the template's manifests for
    // this environment are accepted by the real API server under the team's own role.
    let (status, service) = w
        .call(
            Method::POST,
            "/api/v1/platforms/shop/services",
            &w.dev,
            json!({"name": "payments", "team": "checkout", "environments": [id]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{service}");
    let started = Instant::now();
    while w
        .call(
            Method::GET,
            "/api/v1/platforms/shop/services/payments",
            &w.dev,
            json!(null),
        )
        .await
        .1["state"]
        != "ready"
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "onboarding did not end ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let manifests = git.file("shop-service-payments", "deploy/ledger/deployment.yaml");
    assert_eq!(
        apply_as(&checkout_team, &manifests).await,
        Ok(2),
        "the Deployment and the Service, in checkout"
    );
    assert!(
        git.file("shop-ledger", "services/payments.yaml")
            .contains("namespace: checkout")
    );
    let elsewhere = manifests.replace("namespace: checkout", "namespace: search");
    assert_eq!(
        apply_as(&checkout_team, &elsewhere).await,
        Err(403),
        "not in the other team's"
    );

    w.teardown(&id).await;
    w.until_state(&id, "torn_down", Duration::from_secs(120))
        .await;
    let (status, _) = w.handover(&id, &w.dev, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing after teardown");
    let page = w
        .app
        .get_as(&format!("/environments/{id}/handover"), &w.dev)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("What existed"), "{page}");
    assert!(!page.contains("get-token"), "no kubeconfig after teardown");
    workers.shutdown(Duration::from_secs(5)).await;
}

/// IAM roles in `account` that carry Slipway's owner tag.
async fn owned_roles_in(moto: &Moto, account: &str) -> Vec<String> {
    let iam = moto.iam_in(account).await;
    let mut owned = vec![];
    for role in iam.list_roles().send().await.unwrap().roles() {
        let tags = iam
            .list_role_tags()
            .role_name(role.role_name())
            .send()
            .await
            .unwrap();
        if tags
            .tags()
            .iter()
            .any(|t| t.key() == slipway::provision::cloud::OWNER_TAG)
        {
            owned.push(role.role_name().to_owned());
        }
    }
    owned
}

/// Pooled accounts in AWS (moto's Organizations, IAM, EC2 and EKS): they sit in the platform's
/// ephemeral unit; teardown removes the cluster, network and Slipway's roles and gives the
/// account back, and the next environment leases it instead of a new one. An account with
/// something of Slipway's left in it (an Elastic IP tagged by hand) is quarantined saying what,
/// shown on the pool page, and back in the pool once it is removed and `accounts.pool` checks
/// it again. No account is ever closed.
#[tokio::test]
async fn pooled_aws_accounts_are_emptied_at_teardown_and_quarantined_when_something_is_left() {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let w = World::new().await;
    let workers = w.workers(aws_cloud(&moto, &kube).await);
    let clean = w.perf("load-a").await;
    let dirty = w.perf("load-b").await;
    let mut accounts = vec![];
    for id in [&clean, &dirty] {
        let env = w.until_state(id, "ready", Duration::from_secs(120)).await;
        let account = env["outputs"]["account_id"].as_str().unwrap().to_owned();
        assert_eq!(
            moto.unit_path_of(&account).await,
            ["shop", "ephemeral"],
            "a pooled account is in its platform's ephemeral unit"
        );
        assert!(!owned_roles_in(&moto, &account).await.is_empty());
        accounts.push(account);
    }
    let (clean_account, dirty_account) = (accounts[0].clone(), accounts[1].clone());
    assert_ne!(clean_account, dirty_account);

    let ec2 = moto.ec2_in(&dirty_account).await;
    let mut params = vec![("Domain".to_owned(), "vpc".to_owned())];
    params.extend(slipway::provision::ec2::tag_specification(
        "elastic-ip",
        &[(slipway::provision::cloud::OWNER_TAG, "made-by-hand")],
    ));
    let left = ec2
        .create("AllocateAddress", &params, &["allocationId"])
        .await
        .unwrap();

    for id in [&clean, &dirty] {
        w.teardown(id).await;
    }
    let env = w
        .until_state(&clean, "torn_down", Duration::from_secs(120))
        .await;
    assert_eq!(env["outputs"]["pooled_account"], "returned");
    let env = w
        .until_state(&dirty, "torn_down", Duration::from_secs(120))
        .await;
    assert_eq!(
        env["outputs"]["pooled_account"], "quarantined",
        "what is left never fails the teardown"
    );
    assert!(moto.clusters_in(&clean_account).await.is_empty());
    assert!(owned_roles_in(&moto, &clean_account).await.is_empty());
    assert!(owned_roles_in(&moto, &dirty_account).await.is_empty());

    let (_, quarantined) = w
        .call(
            Method::GET,
            "/api/v1/account-pool?state=quarantined",
            &w.engineer,
            json!(null),
        )
        .await;
    let items = quarantined["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{quarantined}");
    assert_eq!(items[0]["account_id"], dirty_account.as_str());
    assert_eq!(items[0]["environment_id"], dirty.as_str());
    let reason = items[0]["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("Elastic IP {left}")), "{reason}");
    let page = w
        .app
        .client
        .get(w.app.url("/account-pool?state=quarantined"))
        .bearer_auth(&w.engineer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("Elastic IP {left}")), "{page}");

    // The next environment leases the emptied account: no account is created.
    let next = w.perf("load-c").await;
    let env = w
        .until_state(&next, "ready", Duration::from_secs(120))
        .await;
    assert_eq!(env["outputs"]["account_id"], clean_account.as_str());
    let pool_accounts = |all: Vec<(String, String, String)>| {
        all.into_iter()
            .filter(|(name, _, _)| name.starts_with("shop-pool-"))
            .collect::<Vec<_>>()
    };
    assert_eq!(pool_accounts(moto.accounts().await).len(), 2);

    // Removed by hand, then checked again by the periodic job: back in the pool, which the
    // job also fills to its size (3).
    ec2.act("ReleaseAddress", &[("AllocationId".to_owned(), left)], &[])
        .await
        .unwrap();
    w.top_up_pools().await;
    let states: Vec<String> = w.pooled().await.into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(
        states.iter().filter(|s| *s == "available").count(),
        2,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| *s == "leased").count(),
        1,
        "{states:?}"
    );
    let all = pool_accounts(moto.accounts().await);
    assert_eq!(all.len(), 3);
    assert!(
        all.iter().all(|(_, _, state)| state == "ACTIVE"),
        "no pooled account is closed: {all:?}"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_devops_environment_is_started_by_hand_once_and_runs_its_delivery_tool() {
    let w = World::new().await;
    let workers = w.workers(w.simulated());
    let (status, body) = w
        .call(
            Method::POST,
            "/api/v1/platforms/shop/devops-environment",
            &w.dev,
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "developers do not start it: {body}"
    );
    let (status, created) = w
        .call(
            Method::POST,
            "/api/v1/platforms/shop/devops-environment",
            &w.engineer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "devops");
    let (status, _) = w
        .call(
            Method::POST,
            "/api/v1/platforms/shop/devops-environment",
            &w.engineer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "it is created once");
    let id = created["id"].as_str().unwrap();
    let plan = plan_of(&w, id).await;
    assert_eq!(
        plan[0]["resource"], "shop-devops",
        "the blueprint's DevOps account"
    );
    assert!(plan_objects(&plan).contains(&"SpinnakerService spinnaker/spinnaker".to_owned()));
    let env = {
        let started = Instant::now();
        loop {
            let (_, env) = w
                .call(
                    Method::GET,
                    &format!("/api/v1/environments/{id}"),
                    &w.engineer,
                    json!(null),
                )
                .await;
            if env["state"] == "ready" {
                break env;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{env}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(env["outputs"]["cluster_name"], "shop-devops");
    let done: Vec<String> =
        sqlx::query_scalar("SELECT key FROM backlog_item WHERE status = 'done' ORDER BY key")
            .fetch_all(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(done, ["account:devops", "devops:spinnaker"]);
    workers.shutdown(Duration::from_secs(5)).await;
}

/// The objects of the simulated DevOps cluster that stand for deployment targets.
async fn deployment_targets(w: &World) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM simulated_resource WHERE kind = 'object' AND gone_at IS NULL
           AND id LIKE '%shop-devops/%' AND body->'metadata'->'labels' ? 'slipway.dev/deployment-target'
         ORDER BY name",
    )
    .fetch_all(&w.app.pool)
    .await
    .unwrap()
}

/// Environments become deployment targets of the DevOps environment: one ready before it is
/// registered by the DevOps environment's own delivery step, one made after registers itself;
/// each cluster admits the delivery role through an access entry; teardown removes the target.
/// In the simulated cloud (the moto and API server test below checks the objects against a
/// real API server).
#[tokio::test]
async fn environments_are_registered_as_deployment_targets_of_the_devops_environment() {
    let w = World::new().await;
    let workers = w.workers(w.simulated());
    let early = w.approved("early").await;
    w.until_state(&early, "ready", Duration::from_secs(60))
        .await;
    assert_eq!(deployment_targets(&w).await, Vec::<String>::new());
    let (status, devops) = w
        .call(
            Method::POST,
            "/api/v1/platforms/shop/devops-environment",
            &w.engineer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{devops}");
    let devops = devops["id"].as_str().unwrap().to_owned();
    let plan = plan_of(&w, &devops).await;
    assert!(
        plan.as_array()
            .unwrap()
            .iter()
            .any(|s| s["action"] == "eks:CreatePodIdentityAssociation"
                && s["details"]["role"] == "slipway-delivery"),
        "{plan}"
    );
    let started = Instant::now();
    loop {
        let (_, env) = w
            .call(
                Method::GET,
                &format!("/api/v1/environments/{devops}"),
                &w.engineer,
                json!(null),
            )
            .await;
        if env["state"] == "ready" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{env}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        deployment_targets(&w).await,
        [
            "Secret spinnaker/shop-early-kubeconfig",
            "SpinnakerAccount spinnaker/shop-early"
        ]
    );
    let late = w.approved("late").await;
    let env = w.until_state(&late, "ready", Duration::from_secs(60)).await;
    assert_eq!(
        env["outputs"]["deployment_target"]["name"], "shop-late",
        "{env}"
    );
    assert_eq!(env["outputs"]["deployment_target"]["tool"], "spinnaker");
    let (status, handover) = w
        .call(
            Method::GET,
            &format!("/api/v1/environments/{late}/handover"),
            &w.dev,
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{handover}");
    assert_eq!(
        handover["devops"]["pipeline"],
        "Spinnaker account shop-late"
    );
    let targets = deployment_targets(&w).await;
    assert!(
        targets.contains(&"SpinnakerAccount spinnaker/shop-late".to_owned()),
        "{targets:?}"
    );
    let entry: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM simulated_resource WHERE kind = 'access_entry'
           AND body->>'principal_arn' LIKE '%:role/slipway-delivery'",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(entry, 2, "each cluster admits the delivery role once");

    w.teardown(&late).await;
    w.until_state(&late, "torn_down", Duration::from_secs(60))
        .await;
    assert_eq!(
        deployment_targets(&w).await,
        [
            "Secret spinnaker/shop-early-kubeconfig",
            "SpinnakerAccount spinnaker/shop-early"
        ],
        "the torn-down environment is no longer a target"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

/// A child process killed when dropped, so a failing test leaves no worker behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `slipway worker` process provisioning in AWS through `aws_url`, with its clusters'
/// Kubernetes API at `kube_url`; returned once it says it runs.
fn worker_process(w: &World, moto: &Moto, aws_url: &str, kube: &Kube) -> Killed {
    use std::io::{BufRead, BufReader};
    let cwd = tempfile::tempdir().unwrap();
    let mut child = support::slipway_command(cwd.path())
        .env("DATABASE_URL", w.app.db.url())
        .env("SLIPWAY_CLOUD", "aws")
        .env("SLIPWAY_ACCOUNT_EMAIL_DOMAIN", "aws.example.org")
        .env("SLIPWAY_KUBE_ENDPOINT_OVERRIDE", &kube.url)
        .env("SLIPWAY_KUBE_ENDPOINT_CA", kube.ca_path())
        .envs(moto.env())
        .env("AWS_ENDPOINT_URL", aws_url)
        .arg("worker")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawning slipway worker");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("Slipway worker "), "{line:?}");
    Killed(child)
}

#[tokio::test]
async fn a_worker_killed_right_after_create_cluster_resumes_without_a_second_cluster_or_account() {
    let moto = Moto::start().await;
    moto.create_organization().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    // EKS CreateCluster is `POST /clusters`.
    let proxy = support::moto::CrashProxy::start(&moto.url, "POST", "/clusters").await;
    let w = World::new().await;
    let mut first = worker_process(&w, &moto, &proxy.url, &kube);
    proxy.arm(first.0.id());
    let id = w.approved("ledger").await;
    proxy.until_killed(Duration::from_secs(60)).await;
    first.0.wait().unwrap();

    // Moto created the cluster; the dead worker never learnt it.
    let accounts = moto.accounts().await;
    let (_, account, _) = account_of(&accounts, "shop-ledger")[0].clone();
    assert_eq!(moto.clusters_in(&account).await.len(), 1);
    let env = w.environment(&id).await;
    assert_eq!(env["job"]["steps"][3]["state"], "running");

    let second = worker_process(&w, &moto, &moto.url, &kube);
    let env = w.until_state(&id, "ready", Duration::from_secs(90)).await;
    drop(second);
    assert_eq!(
        applied_objects(&kube).await,
        plan_objects(&plan_of(&w, &id).await),
        "every object once"
    );
    let cluster = &env["job"]["steps"][3];
    assert_eq!(
        cluster["attempt"], 2,
        "the cluster step ran again: {cluster}"
    );
    assert_eq!(
        env["job"]["steps"][0]["attempt"], 1,
        "the account step did not"
    );
    let accounts = moto.accounts().await;
    assert_eq!(
        account_of(&accounts, "shop-ledger").len(),
        1,
        "one account: {accounts:?}"
    );
    assert_eq!(
        moto.clusters_in(&account).await,
        [(
            "shop-ledger".to_owned(),
            vec!["shop-ledger-nodes".to_owned()]
        )],
        "one cluster, adopted by the second attempt"
    );
}

/// A worker killed right after Organizations accepted CreateAccount (the answer never reached
/// it): the next attempt adopts the account by its owner tag and still places it in its unit.
#[tokio::test]
async fn an_account_adopted_after_a_crash_ends_in_its_organizational_unit() {
    let moto = Moto::start().await;
    moto.create_organization().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let proxy = support::moto::CrashProxy::start_after_operation(
        &moto.url,
        "AWSOrganizationsV20161128.CreateAccount",
    )
    .await;
    let w = World::new().await;
    let mut first = worker_process(&w, &moto, &proxy.url, &kube);
    proxy.arm(first.0.id());
    let id = w.approved("orders").await;
    proxy.until_killed(Duration::from_secs(60)).await;
    first.0.wait().unwrap();
    let accounts = moto.accounts().await;
    let (_, account, _) = account_of(&accounts, "shop-orders")[0].clone();
    assert!(
        moto.unit_path_of(&account).await.is_empty(),
        "moto made the account at the root; the dead worker never moved it"
    );

    let _second = worker_process(&w, &moto, &moto.url, &kube);
    let env = w.until_state(&id, "ready", Duration::from_secs(90)).await;
    assert_eq!(env["outputs"]["account_id"], account.as_str(), "adopted");
    assert_eq!(
        account_of(&moto.accounts().await, "shop-orders").len(),
        1,
        "no second account"
    );
    assert_eq!(moto.unit_path_of(&account).await, ["shop", "long-lived"]);
}

/// The organization checks and the unit layout, against moto's Organizations: Slipway refuses to
/// work outside an organization or from a member account, saying what to change; units are
/// made once and adopted after; the blueprint's policies are attached once, and one the
/// organization lacks is named.
#[tokio::test]
async fn the_organization_is_checked_and_its_units_and_policies_are_made_once() {
    use slipway::provision::cloud::{CloudError, Provider};
    let moto = Moto::start().await;
    let settings = slipway::app::config::Config::default().aws;
    let aws = AwsCloud::from_sdk_config(moto.sdk_config().await, settings.clone());
    let Err(CloudError::Permanent(refusal)) = aws.organization().await else {
        panic!("outside an organization, Slipway refuses")
    };
    assert!(
        refusal.contains("is not in an AWS organization") && refusal.contains("all features"),
        "{refusal}"
    );

    moto.create_organization().await;
    let organization = aws.organization().await.expect("the management account");
    let shop = aws
        .ensure_unit(&organization.base_unit, "shop")
        .await
        .unwrap();
    assert_eq!(
        aws.ensure_unit(&organization.base_unit, "shop")
            .await
            .unwrap(),
        shop,
        "found again by name, not made twice"
    );
    moto.create_scp("deny-leaving-organization").await;
    let policies = vec!["deny-leaving-organization".to_owned()];
    aws.attach_policies(&shop, &policies).await.unwrap();
    aws.attach_policies(&shop, &policies).await.unwrap();
    // FullAWSAccess is on every new unit, as AWS does it.
    assert_eq!(
        moto.policies_on(&shop).await,
        ["FullAWSAccess", "deny-leaving-organization"]
    );
    let Err(CloudError::Permanent(missing)) = aws
        .attach_policies(&shop, &["no-such-policy".to_owned()])
        .await
    else {
        panic!("a policy the organization lacks is refused")
    };
    assert!(
        missing.contains("\"no-such-policy\"") && missing.contains("has none of that name"),
        "{missing}"
    );

    // Credentials of a member account: Organizations answers, but it is not the management one.
    let member = aws_sdk_organizations::Client::new(&moto.sdk_config().await)
        .create_account()
        .account_name("shop-member")
        .email("shop-member@aws.example.org")
        .send()
        .await
        .unwrap();
    let request = member
        .create_account_status()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let member = aws_sdk_organizations::Client::new(&moto.sdk_config().await)
        .describe_create_account_status()
        .create_account_request_id(request)
        .send()
        .await
        .unwrap()
        .create_account_status()
        .unwrap()
        .account_id()
        .unwrap()
        .to_owned();
    let in_member = AwsCloud::from_sdk_config(moto.config_in(&member).await, settings);
    let Err(CloudError::Permanent(refusal)) = in_member.organization().await else {
        panic!("a member account is refused")
    };
    assert!(
        refusal.contains(&format!("in account {member}, a member of organization"))
            && refusal.contains("only its management account"),
        "{refusal}"
    );
}

#[tokio::test]
async fn the_cloud_connection_page_tests_the_credentials_with_sts_and_shows_no_secret() {
    let moto = Moto::start().await;
    // The standard AWS variables, as an operator sets them (this test has its own process).
    for (key, value) in moto.env() {
        unsafe { std::env::set_var(key, value) };
    }
    let config = slipway::app::config::Config {
        cloud: slipway::app::config::CloudMode::Aws,
        account_email_domain: "aws.example.org".into(),
        ..Default::default()
    };
    let app = TestApp::spawn_with(config.clone()).await;
    let admin = app.token(&[Role::Admin], &[Role::Admin]).await;
    let page = |app: &TestApp, method: Method, path: &str| {
        let request = app
            .client
            .request(method, app.url(path))
            .bearer_auth(&admin);
        async move {
            let res = request.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.text().await.unwrap()
        }
    };
    let settings = page(&app, Method::GET, "/admin/cloud").await;
    assert!(settings.contains("OrganizationAccountAccessRole"));
    assert!(
        settings.contains(&moto.url),
        "the endpoint override is shown"
    );
    let tested = page(&app, Method::POST, "/admin/cloud/test").await;
    assert!(tested.contains("Connected."), "{tested}");
    assert!(tested.contains("123456789012"), "moto's default account");
    assert!(
        tested.contains("Accounts cannot be created from here.")
            && tested.contains("is not in an AWS organization"),
        "the organization check says why: {tested}"
    );
    moto.create_organization().await;
    let tested = page(&app, Method::POST, "/admin/cloud/test").await;
    assert!(tested.contains("Organization ready."), "{tested}");
    assert!(
        !tested.contains(support::moto::SECRET_KEY),
        "the secret key is never shown"
    );

    // Nothing answers at the endpoint: the page says the connection failed, and why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    unsafe { std::env::set_var("AWS_ENDPOINT_URL", &url) };
    let broken = TestApp::spawn_with(config).await;
    let admin = broken.token(&[Role::Admin], &[Role::Admin]).await;
    let res = broken
        .client
        .post(broken.url("/admin/cloud/test"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert!(text.contains("The connection failed."), "{text}");
    assert!(text.contains("sts:GetCallerIdentity failed"), "{text}");
}

#[tokio::test]
async fn a_worker_killed_at_a_random_point_of_the_bootstrap_resumes_with_every_object_once() {
    let moto = Moto::start().await;
    moto.create_organization().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let w = World::new().await;
    let mut first = worker_process(&w, &moto, &moto.url, &kube);
    let id = w.approved("ledger").await;
    let planned = plan_objects(&plan_of(&w, &id).await);

    // Killed once this many objects exist: somewhere in the Kubernetes step, different each run
    // (the seed is printed so a failure can be replayed with SLIPWAY_TEST_SEED).
    let seed = support::test_seed();
    let kill_after = 1 + (seed as usize % (planned.len() - 1));
    eprintln!(
        "SLIPWAY_TEST_SEED={seed}: killing the worker once {kill_after} of {} objects exist",
        planned.len()
    );
    let started = Instant::now();
    while kube.objects().await.len() < kill_after {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the bootstrap never reached {kill_after} objects"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    let second = worker_process(&w, &moto, &moto.url, &kube);
    let env = w.until_state(&id, "ready", Duration::from_secs(120)).await;
    drop(second);
    assert_eq!(applied_objects(&kube).await, planned, "every object once");
    for object in kube.objects().await {
        let managers: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .filter(|f| f["subresource"].is_null())
                    .filter_map(|f| f["manager"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            managers
                .iter()
                .all(|m| *m == "slipway" || *m == "kube-controller-manager"),
            "{}: {managers:?}",
            slipway::provision::cloud::describe_object(&object)
        );
    }
    let accounts = moto.accounts().await;
    assert_eq!(account_of(&accounts, "shop-ledger").len(), 1);
    assert_eq!(
        env["job"]["steps"][0]["attempt"], 1,
        "the account step ran once"
    );
}

/// Slipway's own EC2 Query API client (no SDK crate) signs, sends and reads DescribeSubnets as
/// EC2 answers it: the default VPC moto gives every account has a subnet in each zone.
#[tokio::test]
async fn the_ec2_client_reads_subnets_by_filter() {
    use slipway::provision::ec2::Ec2;
    let moto = Moto::start().await;
    let credentials = aws_credential_types::Credentials::new(
        support::moto::ACCESS_KEY,
        support::moto::SECRET_KEY,
        None,
        None,
        "test",
    );
    let ec2 = Ec2::new(support::moto::REGION, credentials, Some(&moto.url));
    let defaults = ec2
        .describe_subnets(&[("default-for-az", "true")])
        .await
        .unwrap();
    assert!(defaults.len() >= 2, "{defaults:?}");
    let zones: std::collections::HashSet<_> =
        defaults.iter().map(|s| &s.availability_zone).collect();
    assert_eq!(zones.len(), defaults.len(), "one default subnet per zone");
    assert!(defaults.iter().all(|s| s.vpc_id == defaults[0].vpc_id));
    assert!(defaults.iter().all(|s| s.id.starts_with("subnet-")));
    let tagged = ec2
        .describe_subnets(&[("tag:slipway:eks", "true"), ("default-for-az", "true")])
        .await
        .unwrap();
    assert!(tagged.is_empty(), "no subnet is tagged: {tagged:?}");
}

/// The SIGKILL drill: concurrent provisionings against moto and the real API server while
/// worker processes are killed with SIGKILL at random points of their progress (a replacement
/// starts after each kill). Every environment becomes ready with exactly one account, cluster
/// and node group, and no job is left behind. Short form here (3 environments, 4 kills); the
/// long form (`tests/drill/kill`, 20 and 20) gives the README's figures.
#[tokio::test]
async fn drill_concurrent_provisionings_survive_workers_killed_at_random() {
    let environments = support::drill_setting("SLIPWAY_DRILL_ENVIRONMENTS", 3);
    let kills = support::drill_setting("SLIPWAY_DRILL_KILLS", 4);
    let mut seed = support::test_seed();
    eprintln!("SLIPWAY_TEST_SEED={seed}: {environments} environments, {kills} kills");
    // xorshift64: reproducible from the printed seed.
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below.max(1)
    };
    let moto = Moto::start().await;
    moto.create_organization().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let w = World::new().await;
    let mut workers: Vec<Killed> = (0..2)
        .map(|_| worker_process(&w, &moto, &moto.url, &kube))
        .collect();
    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 0..environments {
        ids.push(w.approved(&format!("drill-{n}")).await);
    }

    // Progress: steps completed and log lines written, over all jobs. A kill comes after a
    // random amount of it, so kills land anywhere in the steps, mid-step included.
    let progress = "SELECT (count(*) FILTER (WHERE state = 'completed') + coalesce(sum(cardinality(log)), 0))::bigint FROM job_step";
    let unfinished = "SELECT count(*) FROM environment WHERE state NOT IN ('ready', 'failed')";
    let deadline = Duration::from_secs(120 + 30 * environments);
    let mut killed = 0;
    let mut next_kill: i64 = 1 + random(12) as i64;
    loop {
        let open: i64 = sqlx::query_scalar(unfinished)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < deadline,
            "{open} environments still provisioning after {deadline:?}"
        );
        let done: i64 = sqlx::query_scalar(progress)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
        if killed < kills && done >= next_kill {
            let victim = random(workers.len() as u64) as usize;
            let mut dead = workers.swap_remove(victim);
            dead.0.kill().unwrap();
            dead.0.wait().unwrap();
            killed += 1;
            next_kill = done + 1 + random(12) as i64;
            workers.push(worker_process(&w, &moto, &moto.url, &kube));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    // An environment is ready a moment before its job records its last step: the workers
    // finish that before they go, and no job may be left behind.
    let open_jobs = "SELECT count(*) FROM job WHERE state IN ('available', 'running', 'retryable')
         AND unique_key IS DISTINCT FROM 'periodic:' || kind";
    let settling = Instant::now();
    loop {
        let open: i64 = sqlx::query_scalar(open_jobs)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            settling.elapsed() < Duration::from_secs(60),
            "{open} jobs still waiting or running a minute after every environment was ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(workers);

    let accounts = moto.accounts().await;
    let mut reattempted = 0;
    let mut ranges = std::collections::BTreeSet::new();
    for (n, id) in ids.iter().enumerate() {
        let env = w.environment(id).await;
        assert_eq!(env["state"], "ready", "{env}");
        let range = env["outputs"]["network"]["cidr"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            ranges.insert(range.clone()),
            "no two environments of the platform share a VPC range: {range}"
        );
        let name = format!("shop-drill-{n}");
        let mine = account_of(&accounts, &name);
        assert_eq!(mine.len(), 1, "one account for {name}: {accounts:?}");
        assert_eq!(
            moto.clusters_in(&mine[0].1).await,
            [(name.clone(), vec![format!("{name}-nodes")])],
            "one cluster with one node group for {name}"
        );
        reattempted += env["job"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|step| step["attempt"].as_i64() > Some(1))
            .count();
    }
    let planned = plan_objects(&plan_of(&w, &ids[0]).await);
    assert_eq!(
        applied_objects(&kube).await,
        planned,
        "the environments share one API server here, so their objects coincide: each once"
    );
    eprintln!(
        "drill: {environments} environments ready in {:.1} s, {killed} workers killed, {reattempted} steps ran more than once",
        took.as_secs_f64()
    );
}

/// The AWS fault drill: provisioning through a proxy that throttles, fails with 500s and loses
/// answers after moto did the work, in a share of all calls. First a storm (every call
/// throttled): the request page says which AWS call is throttled, in words. Then normal
/// weather with faults, eventual consistency as AWS documents it (each account's first
/// CreateAccount fails with CONCURRENT_ACCOUNT_MODIFICATION, its access role answers
/// AccessDenied twice, EKS cannot see the new roles twice) and the worker killed with SIGKILL
/// in the middle: every environment becomes ready with exactly one account, cluster and node
/// group. Short form: 2 environments, 15% of calls; `tests/drill/aws-faults` runs more.
#[tokio::test]
async fn drill_aws_faults_leave_no_duplicate_and_read_clearly() {
    let environments = support::drill_setting("SLIPWAY_DRILL_ENVIRONMENTS", 2);
    let per_mille = support::drill_setting("SLIPWAY_DRILL_FAULTS_PER_MILLE", 150);
    let seed = support::test_seed();
    eprintln!(
        "SLIPWAY_TEST_SEED={seed}: {environments} environments, {per_mille}‰ of calls faulted"
    );
    let moto = Moto::start().await;
    moto.create_organization().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let proxy = support::moto::FaultProxy::start(&moto.url, seed, per_mille).await;
    let w = World::new().await;
    let mut worker = worker_process(&w, &moto, &proxy.url, &kube);

    proxy.storm(true);
    let first = w.approved("faults-0").await;
    let started = Instant::now();
    let error = loop {
        let env = w.environment(&first).await;
        let step_error = env["job"]["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|step| step["error"].as_str().map(str::to_owned));
        if let Some(error) = step_error {
            break error;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no step reported the storm: {env}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        (error.contains("sts:") || error.contains("organizations:"))
            && error.contains("was throttled by AWS"),
        "the error names the AWS call and says it was throttled: {error}"
    );
    assert!(
        !error.contains("<ErrorResponse") && !error.contains("Error {"),
        "no raw XML or debug output: {error}"
    );
    let page = w.page(&first).await;
    assert!(
        page.contains("was throttled by AWS"),
        "the request page shows it"
    );
    proxy.settling(support::moto::Settling {
        assume_role: 2,
        eks_roles: 2,
        first_account_request_fails: Some("CONCURRENT_ACCOUNT_MODIFICATION"),
        close_account_quota: 0,
    });
    proxy.storm(false);

    let mut ids = vec![first];
    for n in 1..environments {
        ids.push(w.approved(&format!("faults-{n}")).await);
    }
    // SIGKILL once the last environment is past its account, while the others are somewhere
    // later: a new worker takes over.
    let last = ids.last().unwrap().clone();
    let started = Instant::now();
    while w.environment(&last).await["job"]["steps"][0]["state"] != "completed" {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the account step of {last} never completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.0.kill().unwrap();
    worker.0.wait().unwrap();
    let _worker = worker_process(&w, &moto, &proxy.url, &kube);
    for id in &ids {
        w.until_state(id, "ready", Duration::from_secs(180 + 60 * environments))
            .await;
    }
    let accounts = moto.accounts().await;
    for n in 0..environments {
        let name = format!("shop-faults-{n}");
        let mine = account_of(&accounts, &name);
        assert_eq!(mine.len(), 1, "one account for {name}: {accounts:?}");
        assert_eq!(
            moto.clusters_in(&mine[0].1).await,
            [(name.clone(), vec![format!("{name}-nodes")])],
            "one cluster with one node group for {name}"
        );
    }
    let injected = proxy.injected();
    let count = |service: &str, fault| injected.get(&(service.to_owned(), fault)).copied();
    use support::moto::Fault;
    assert_eq!(
        count("organizations", Fault::AccountRequestFailed),
        Some(environments as usize),
        "each account's first request failed, and a second one made it: {injected:?}"
    );
    assert!(
        count("sts", Fault::NotYetPropagated) >= Some(2 * environments as usize)
            && count("eks", Fault::NotYetPropagated) >= Some(4 * environments as usize),
        "every access role and every EKS role was refused while settling: {injected:?}"
    );
    // Which other faults came is up to the seed (the storm's throttling always does); the
    // counts are printed, and the long form's are in the README.
    eprintln!("drill: faults injected {injected:?}");
}

/// Provisioning's critical path, against a cloud that takes time (the latency proxy: moto's
/// creations made to take `SLIPWAY_CLOUD_WAIT_*` seconds): how long approval → ready takes
/// beside the longest chain of waits that cannot overlap (the account, then the cluster, then
/// the node group or the add-ons, whichever is longer), and approval → first AWS call. It checks
/// only that the environment becomes ready; `tests/drill/critical-path` gives the README's figures.
#[tokio::test]
async fn drill_critical_path_from_approval_to_ready_beside_the_cloud_waits() {
    let wait = |name: &str, short: u64| Duration::from_secs(support::drill_setting(name, short));
    let waits = support::moto::CloudWaits {
        account: wait("SLIPWAY_CLOUD_WAIT_ACCOUNT", 3),
        cluster: wait("SLIPWAY_CLOUD_WAIT_CLUSTER", 6),
        nodegroup: wait("SLIPWAY_CLOUD_WAIT_NODEGROUP", 4),
        addon: wait("SLIPWAY_CLOUD_WAIT_ADDON", 3),
    };
    let moto = Moto::start().await;
    moto.create_organization().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let proxy = support::moto::LatencyProxy::start(&moto.url, waits).await;
    let w = World::new().await;
    let _worker = worker_process(&w, &moto, &proxy.url, &kube);
    let (status, created) = w
        .call(
            Method::POST,
            "/api/v1/platforms/shop/environments",
            &w.dev,
            json!({"environment_type": "dev", "name": "path", "purpose": "Critical path"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // The engineer's client is made, and its connection open, before the clock starts: the
    // figure is Slipway's, not the time a test client takes to load its TLS roots and connect.
    let client = support::client();
    let warm = client.get(w.app.url("/healthz")).send().await.unwrap();
    assert_eq!(warm.status(), StatusCode::OK);
    let approve = client
        .post(w.app.url(&format!("/api/v1/environments/{id}/approve")))
        .bearer_auth(&w.engineer)
        .json(&json!({}));
    proxy.forget_calls();
    let approved = Instant::now();
    let approved_at = chrono::Utc::now();
    let res = approve.send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let env = w.until_state(&id, "ready", Duration::from_secs(600)).await;
    let took = approved.elapsed();
    let first_call = proxy.first_call().map(|at| at.duration_since(approved));
    let chain = waits.account + waits.cluster + waits.nodegroup.max(waits.addon);
    // The add-ons need only the cluster: they are asked for while the node group starts, not
    // after it is ACTIVE, so their wait overlaps the node group's.
    let nodegroups = proxy.created("nodegroup/");
    let addons = proxy.created("addon/");
    assert_eq!(nodegroups.len(), 1, "{nodegroups:?}");
    assert!(!addons.is_empty(), "no add-on was created");
    let nodes_active = nodegroups[0].1 + waits.nodegroup;
    for (addon, at) in &addons {
        assert!(
            *at < nodes_active,
            "{addon} was asked for after the node group was ACTIVE"
        );
    }
    let steps: Vec<String> = env["job"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let seconds = |at: &Value| {
                at.as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            };
            let length = seconds(&s["finished_at"])
                .zip(seconds(&s["started_at"]))
                .map(|(end, start)| (end - start).as_seconds_f64())
                .unwrap_or_default();
            format!("{} {length:.1} s", s["name"].as_str().unwrap_or_default())
        })
        .collect();
    // Where the time to the first call goes: to the first step's start (the approval's
    // transaction, the worker's wake-up and claim), then within the step.
    let first_step_at = env["job"]["steps"][0]["started_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|at| (at.with_timezone(&chrono::Utc) - approved_at).as_seconds_f64() * 1000.0);
    eprintln!(
        "critical path: approval → ready {:.1} s; chain of cloud waits {:.1} s ({:.2}×); approval → first AWS call {} (the first step started after {}); steps: {}",
        took.as_secs_f64(),
        chain.as_secs_f64(),
        took.as_secs_f64() / chain.as_secs_f64(),
        first_call.map_or("none".to_owned(), |d| format!(
            "{:.0} ms",
            d.as_secs_f64() * 1000.0
        )),
        first_step_at.map_or("?".to_owned(), |ms| format!("{ms:.0} ms")),
        steps.join(", ")
    );
}

/// One span as an OTLP receiver got it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: std::collections::HashMap<String, String>,
}

/// A small OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf, decoded with the official
/// opentelemetry-proto definitions): its base URL and what it received. Stands in for the
/// OpenTelemetry Collector, which cannot be installed here.
async fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<ReceivedSpan>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;
    let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut got = sink.lock().unwrap();
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            let attributes = span
                                .attributes
                                .iter()
                                .map(|kv| {
                                    let value =
                                        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                            Some(Any::StringValue(s)) => s.clone(),
                                            Some(Any::IntValue(i)) => i.to_string(),
                                            Some(other) => format!("{other:?}"),
                                            None => String::new(),
                                        };
                                    (kv.key.clone(), value)
                                })
                                .collect();
                            got.push(ReceivedSpan {
                                name: span.name,
                                trace_id: span.trace_id,
                                span_id: span.span_id,
                                parent_span_id: span.parent_span_id,
                                attributes,
                            });
                        }
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

#[tokio::test]
async fn one_approval_is_one_trace_from_the_request_through_the_job_to_each_cloud_call() {
    let (receiver, spans) = otlp_receiver().await;
    let config = slipway::app::config::Config {
        otlp_endpoint: Some(receiver),
        ..Default::default()
    };
    // As `slipway serve` does, outside the async runtime (the exporter's client blocks).
    let telemetry = std::thread::spawn(move || slipway::app::telemetry::init(&config))
        .join()
        .unwrap();
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let w = World::new().await;
    let workers = w.workers(aws_cloud(&moto, &kube).await);
    let id = w.approved("traced").await;
    w.until_state(&id, "ready", Duration::from_secs(90)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    // Flushes what the batch processor holds; it blocks, while the receiver runs here.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();

    let spans = spans.lock().unwrap().clone();
    let named =
        |name: &str| -> Vec<&ReceivedSpan> { spans.iter().filter(|s| s.name == name).collect() };
    let approval = named("POST /api/v1/environments/{id}/approve");
    assert_eq!(
        approval.len(),
        1,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let approval = approval[0];
    assert_eq!(
        approval.attributes["route"],
        "/api/v1/environments/{id}/approve"
    );
    // Log lines inside the request carry its trace id (a field of the request's span).
    let hex: String = approval
        .trace_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(approval.attributes["trace_id"], hex);
    // The job continues the approval's trace, as the request's child.
    let job = named("job environment.provision");
    let names: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(job.len(), 1, "one attempt: {names:?}");
    let job = job[0];
    assert_eq!(job.trace_id, approval.trace_id);
    assert!(
        spans
            .iter()
            .any(|s| s.span_id == job.parent_span_id && s.trace_id == approval.trace_id),
        "the job's parent is a span of the approval request"
    );
    // Each step is the job's child; each cloud call is a child of its step.
    let step = |name: &str| {
        let found = named(&format!("step {name}"));
        assert_eq!(found.len(), 1, "step {name}");
        assert_eq!(found[0].parent_span_id, job.span_id, "step {name}");
        found[0]
    };
    let below = |parent: &ReceivedSpan, name: &str| {
        spans
            .iter()
            .any(|s| s.name == name && s.parent_span_id == parent.span_id)
    };
    assert!(
        below(step("account"), "Organizations.CreateAccount"),
        "{names:?}"
    );
    assert!(below(step("cluster"), "EKS.CreateCluster"));
    assert!(below(step("nodegroup"), "EKS.CreateNodegroup"));
    let kubernetes = step("kubernetes");
    assert!(below(kubernetes, "apply Namespace"));
    let apply = spans
        .iter()
        .find(|s| s.name == "apply Namespace" && s.parent_span_id == kubernetes.span_id)
        .unwrap();
    assert_eq!(apply.attributes["k8s.verb"], "apply");
    assert_eq!(apply.attributes["k8s.kind"], "Namespace");
    assert!(
        spans
            .iter()
            .filter(|s| s.name.starts_with("step ") || s.name.starts_with("EKS."))
            .all(|s| s.trace_id == approval.trace_id),
        "one trace"
    );
}

/// The (path, expected, actual) of each difference in a drift report's `items`, sorted.
fn differences(report: &Value) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = report["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not checked: {report}"))
        .iter()
        .map(|d| {
            let text = |k: &str| d[k].as_str().unwrap().to_owned();
            (text("path"), text("expected"), text("actual"))
        })
        .collect();
    found.sort();
    found
}

/// Drift against moto and the real API server: a fresh environment has none; a ConfigMap edited
/// by hand and a node group resized in EKS are reported as exactly those fields (told once,
/// not at every check); accepting records the reason and clears the Maintain list; reconcile
/// puts both back and ends the acceptances.
#[tokio::test]
async fn drift_names_exactly_the_fields_changed_by_hand_and_reconcile_puts_them_back() {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let w = World::new().await;
    let workers = w.workers(aws_cloud(&moto, &kube).await);
    let id = w.approved("ledger").await;
    let env = w.until_state(&id, "ready", Duration::from_secs(120)).await;
    let (_, maintain) = w
        .call(
            Method::GET,
            "/api/v1/platforms/shop/maintain",
            &w.engineer,
            json!(null),
        )
        .await;
    assert!(
        maintain["items"][0]["drift"].is_null(),
        "not checked yet: {maintain}"
    );
    let report = w.maintain(&id, "drift/check").await;
    assert_eq!(
        report["items"],
        json!([]),
        "a fresh environment has no drift: {report}"
    );

    let plan = plan_of(&w, &id).await;
    let step = |action: &str, matches: &dyn Fn(&Value) -> bool| {
        plan.as_array()
            .unwrap()
            .iter()
            .find(|s| s["action"] == action && matches(&s["details"]))
            .cloned()
            .unwrap_or_else(|| panic!("no {action} in the plan"))
    };
    let config = step("kubernetes:apply", &|o| {
        o["kind"] == "ConfigMap" && o["metadata"]["name"] == "fluent-bit"
    })["details"]
        .clone();
    let namespace = config["metadata"]["namespace"].as_str().unwrap().to_owned();
    let nodegroup = step("eks:CreateNodegroup", &|_| true);
    let group = nodegroup["resource"].as_str().unwrap().to_owned();
    let (min, max) = (
        nodegroup["details"]["min_size"].as_i64().unwrap(),
        nodegroup["details"]["max_size"].as_i64().unwrap(),
    );
    let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(kube.admin(), &namespace);
    config_maps
        .patch(
            "fluent-bit",
            &kube::api::PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &kube::api::Patch::Merge(json!({"data": {"fluent-bit.conf": "edited by hand"}})),
        )
        .await
        .unwrap();
    let account = env["outputs"]["account_id"].as_str().unwrap();
    let cluster = env["outputs"]["cluster_name"].as_str().unwrap();
    let eks = moto.eks_in(account).await;
    eks.update_nodegroup_config()
        .cluster_name(cluster)
        .nodegroup_name(&group)
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(min as i32 + 3)
                .max_size(max as i32 + 5)
                .desired_size(min as i32 + 3)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let report = w.maintain(&id, "drift/check").await;
    let planned_config = config["data"]["fluent-bit.conf"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        differences(&report),
        [
            (
                format!("ConfigMap {namespace}/fluent-bit: data[\"fluent-bit.conf\"]"),
                planned_config.clone(),
                "edited by hand".to_owned()
            ),
            (
                format!("EKS node group {group}: scalingConfig.maxSize"),
                max.to_string(),
                (max + 5).to_string()
            ),
            (
                format!("EKS node group {group}: scalingConfig.minSize"),
                min.to_string(),
                (min + 3).to_string()
            ),
        ],
        "exactly the two changes, nothing the API server defaults or the nodes' stand-in writes"
    );
    let drifted = || {
        count(
            &w.app.pool,
            "SELECT count(*) FROM notification WHERE kind = 'drifted'",
        )
    };
    let told = drifted().await;
    assert!(told >= 1, "the platform team is told");
    w.maintain(&id, "drift/check").await;
    assert_eq!(drifted().await, told, "the same drift is not told again");

    // Accepting: a reason is required, the requester may not, the engineer may.
    let path = format!("/api/v1/environments/{id}/drift/accept");
    let accept = |token: String, reason: &'static str| {
        let (w, path) = (&w, &path);
        async move {
            w.call(Method::POST, path, &token, json!({ "reason": reason }))
                .await
        }
    };
    let (status, problem) = accept(w.engineer.clone(), "  ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "reason", "{problem}");
    let (status, _) = accept(w.dev.clone(), "mine").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = accept(
        w.engineer.clone(),
        "Load test of the week: bigger nodes until Friday",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 3);
    let report = w.drift(&id).await;
    assert_eq!(report["items"], json!([]), "{report}");
    assert_eq!(report["accepted"].as_array().unwrap().len(), 3);
    assert_eq!(
        report["accepted"][0]["reason"],
        "Load test of the week: bigger nodes until Friday"
    );
    let (_, maintain) = w
        .call(
            Method::GET,
            "/api/v1/platforms/shop/maintain",
            &w.engineer,
            json!(null),
        )
        .await;
    assert_eq!(maintain["items"][0]["drift"], json!([]), "{maintain}");
    let (status, _) = accept(w.engineer.clone(), "again").await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing left to accept");

    // Reconciling puts both back and ends the acceptances.
    let (status, _) = w
        .call(
            Method::POST,
            &format!("/api/v1/environments/{id}/reconcile"),
            &w.dev,
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the platform team reconciles"
    );
    let report = w.maintain(&id, "reconcile").await;
    assert_eq!(report["items"], json!([]), "{report}");
    assert_eq!(report["accepted"], json!([]));
    let live = config_maps.get("fluent-bit").await.unwrap();
    assert_eq!(
        live.data.unwrap()["fluent-bit.conf"],
        planned_config,
        "the plan's value is back"
    );
    let scaling = eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(&group)
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap()
        .scaling_config
        .unwrap();
    assert_eq!(
        (scaling.min_size, scaling.max_size),
        (Some(min as i32), Some(max as i32))
    );
    let env = w.environment(&id).await;
    let kinds: Vec<&str> = env["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in ["drifted", "drift_accepted", "reconciling"] {
        assert!(
            kinds.contains(&kind),
            "the timeline records {kind}: {kinds:?}"
        );
    }
    workers.shutdown(Duration::from_secs(5)).await;
}

/// The drift page works without JavaScript: check now, the differences (here a simulated node
/// group resized behind Slipway's back), the reason's error beside its field, and the accepted
/// differences with who accepted them and why.
#[tokio::test]
async fn the_drift_page_checks_and_accepts_without_javascript() {
    let w = World::new().await;
    let workers = w.workers(w.simulated());
    let id = w.approved("ledger").await;
    w.until_state(&id, "ready", Duration::from_secs(60)).await;
    let email = w.app.platform_member("shop", ENGINEER).await;
    let browser = support::client();
    w.app.login(&browser, &email, support::PASSWORD).await;
    let url = w.app.url(&format!("/environments/{id}/drift"));
    let page = || async {
        browser
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let post = |action: &'static str, form: Vec<(&'static str, String)>| {
        let browser = &browser;
        let url = w.app.url(&format!("/environments/{id}/{action}"));
        async move { browser.post(url).form(&form).send().await.unwrap() }
    };
    let html = page().await;
    assert!(html.contains("Not checked yet."), "{html}");
    let csrf = support::csrf_token(&html);
    sqlx::query(
        "UPDATE simulated_resource SET body = body || '{\"max_size\": 12}' WHERE kind = 'nodegroup'",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let res = post("drift/check", vec![("_csrf", csrf.clone())]).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "back to the drift page"
    );
    let begun = Instant::now();
    let html = loop {
        let html = page().await;
        if html.contains("differences nobody accepted") {
            break html;
        }
        assert!(begun.elapsed() < Duration::from_secs(60), "{html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(html.contains("scalingConfig.maxSize"), "{html}");
    assert!(html.contains("<code>12</code>"), "{html}");

    let res = post(
        "drift/accept",
        vec![("_csrf", csrf.clone()), ("reason", "   ".into())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"id="a-reason-error""#) && html.contains("Say why this drift is accepted"),
        "the form again, the error beside the field: {html}"
    );
    let res = post(
        "drift/accept",
        vec![
            ("_csrf", csrf.clone()),
            ("reason", "Black Friday headroom".into()),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = page().await;
    assert!(html.contains("Drift accepted"), "{html}");
    assert!(
        html.contains("Black Friday headroom") && html.contains(&email),
        "{html}"
    );
    assert!(html.contains(r#"id="no-drift""#), "{html}");
    let res = post("drift/accept", vec![("reason", "no token".into())]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "CSRF is checked");

    // With no worker to run it, a reconcile stays queued: the environment cannot be torn down
    // under it, and a second reconcile is refused.
    workers.shutdown(Duration::from_secs(5)).await;
    let path = format!("/api/v1/environments/{id}/reconcile");
    let reconcile = || w.call(Method::POST, &path, &w.engineer, json!({}));
    let (status, body) = reconcile().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = reconcile().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = w
        .call(
            Method::POST,
            &format!("/api/v1/environments/{id}/teardown"),
            &w.dev,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("being reconciled"),
        "{body}"
    );
}

/// What environments really cost, from Cost Explorer as moto serves it: nothing is shown as
/// spent before the bill is read; then each environment's month so far sits beside its
/// estimate and its type's budget on the Maintain tab, its page and the platform page, with the
/// estimate's error per day; passing 80 % and 100 % of the budget warns the platform team once
/// each, not at every read.
#[tokio::test]
async fn actual_spend_from_cost_explorer_sits_beside_the_estimate_and_budgets_warn_once() {
    let moto = Moto::start().await;
    let w = World::at("2026-12-03T09:00:00Z").await;
    w.approve_revision(|doc| doc["environment_types"][0]["budget_month_usd"] = json!(100))
        .await;
    let workers = w.workers(w.simulated());
    let ledger = w.approved("ledger").await;
    let billing = w.approved("billing").await;
    let mut accounts = vec![];
    for id in [&ledger, &billing] {
        let env = w.until_state(id, "ready", Duration::from_secs(60)).await;
        accounts.push(env["outputs"]["account_id"].as_str().unwrap().to_owned());
    }
    w.run_job(slipway::maintain::cost::COST_JOB).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let clusters = || async {
        let (status, body) = w
            .call(
                Method::GET,
                "/api/v1/platforms/shop/maintain",
                &w.engineer,
                json!(null),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().unwrap().clone()
    };
    for c in clusters().await {
        assert!(
            c["cost"]["month_to_date_usd"].is_null(),
            "the simulated cloud has no bill: {c}"
        );
        assert_eq!(c["cost"]["budget_month_usd"], 100.0);
    }

    let group = |account: &str, usd: &str| json!({"Keys": [account], "Metrics": {"UnblendedCost": {"Amount": usd, "Unit": "USD"}}});
    let res = support::client()
        .post(format!(
            "{}/moto-api/static/ce/cost-and-usage-results",
            moto.url
        ))
        .json(&json!({"results": [{
            "ResultsByTime": [{
                "TimePeriod": {"Start": "2026-12-03", "End": "2026-12-04"},
                "Total": {},
                "Groups": [group(&accounts[0], "85.25"), group(&accounts[1], "130"),
                           group("999999999999", "12")],
                "Estimated": true
            }],
            "DimensionValueAttributes": []
        }]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    moto.create_organization().await;
    let aws = Cloud::Aws(Box::new(AwsCloud::from_sdk_config(
        moto.sdk_config().await,
        slipway::app::config::Config::default().aws,
    )));
    let workers = w.workers(aws);
    w.run_job(slipway::maintain::cost::COST_JOB).await;

    let spent = |name: &str, clusters: &[Value]| {
        let c = clusters.iter().find(|c| c["name"] == name).unwrap();
        (
            c["cost"]["month_to_date_usd"].as_f64(),
            c["cost"]["estimate_month_usd"].as_f64().unwrap(),
        )
    };
    let all = clusters().await;
    let (ledger_spent, ledger_estimate) = spent("ledger", &all);
    assert_eq!(
        ledger_spent,
        Some(85.25),
        "an account unknown to Slipway is left out"
    );
    assert_eq!(spent("billing", &all).0, Some(130.0));
    let (_, cost) = w
        .call(
            Method::GET,
            &format!("/api/v1/environments/{ledger}/cost"),
            &w.dev,
            json!(null),
        )
        .await;
    assert_eq!(cost["month_to_date_usd"], 85.25, "{cost}");
    assert_eq!(cost["budget_month_usd"], 100.0);
    assert_eq!(cost["days"][0]["day"], "2026-12-03");
    assert_eq!(cost["days"][0]["actual_usd"], 85.25);
    let estimate_day = cost["days"][0]["estimate_usd"].as_f64().unwrap();
    assert!(
        (estimate_day - ledger_estimate / 730.0 * 24.0).abs() < 0.01,
        "the day's estimate is the hourly estimate over 24 hours: {cost} beside {ledger_estimate}"
    );
    let error = cost["days"][0]["error_percent"].as_f64().unwrap();
    let expected = ((85.25 - estimate_day) / estimate_day * 1000.0).round() / 10.0;
    assert!((error - expected).abs() < 0.11, "{error} vs {expected}");

    let warnings = || async {
        sqlx::query_as::<_, (String, i32)>(
            "SELECT e.name, w.threshold FROM budget_warning w
             JOIN environment e ON e.id = w.environment_id ORDER BY 1, 2",
        )
        .fetch_all(&w.app.pool)
        .await
        .unwrap()
    };
    assert_eq!(
        warnings().await,
        [
            ("billing".to_owned(), 80),
            ("billing".to_owned(), 100),
            ("ledger".to_owned(), 80)
        ]
    );
    let told = || {
        count(
            &w.app.pool,
            "SELECT count(DISTINCT (environment_id, message)) FROM notification
             WHERE kind = 'budget_warning'",
        )
    };
    assert_eq!(
        told().await,
        2,
        "one warning each: ledger at 80 %, billing at 100 %"
    );
    let timeline = w.environment(&billing).await["timeline"].to_string();
    assert!(
        timeline.contains("130% of its monthly budget"),
        "{timeline}"
    );
    w.run_job(slipway::maintain::cost::COST_JOB).await;
    assert_eq!(told().await, 2, "not told again at the next read");

    let page = w.page(&ledger).await;
    assert!(
        page.contains("$85.25") && page.contains("Spend by day"),
        "{page}"
    );
    let platform = w
        .app
        .get_as("/platforms/shop", &w.engineer)
        .await
        .text()
        .await
        .unwrap();
    assert!(platform.contains("<strong>$215.25</strong>"), "{platform}");
    workers.shutdown(Duration::from_secs(5)).await;
}

/// The version calendar in force: EKS's own answer to DescribeClusterVersions (moto extended
/// in-process) wins over the table shipped with Slipway, and the Maintain tab follows it;
/// admins correct what neither has, with a source, and never over EKS's answer.
#[tokio::test]
async fn eks_dates_win_over_the_shipped_calendar_and_admins_correct_what_it_lacks() {
    let moto = Moto::start().await;
    let w = World::at("2026-12-03T09:00:00Z").await;
    w.approve_revision(|doc| doc["environment_types"][0]["kubernetes_version"] = json!("1.34"))
        .await;
    let workers = w.workers(w.simulated());
    let id = w.approved("ledger").await;
    w.until_state(&id, "ready", Duration::from_secs(60)).await;
    w.run_job(slipway::maintain::currency::CALENDAR_JOB).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let ledger = || async {
        let (_, body) = w
            .call(
                Method::GET,
                "/api/v1/platforms/shop/maintain",
                &w.engineer,
                json!(null),
            )
            .await;
        body["items"][0].clone()
    };
    assert_eq!(
        ledger().await["support"],
        "extended",
        "the shipped table's dates"
    );

    let epoch = |day: &str| {
        chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp()
    };
    let res = support::client()
        .post(format!(
            "{}/moto-api/slipway/eks-cluster-versions",
            moto.url
        ))
        .body(
            json!([{"clusterVersion": "1.34", "clusterType": "eks", "status": "STANDARD_SUPPORT",
                    "endOfStandardSupportDate": epoch("2027-01-15"),
                    "endOfExtendedSupportDate": epoch("2028-01-15")}])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    moto.create_organization().await;
    let workers = w.workers(Cloud::Aws(Box::new(AwsCloud::from_sdk_config(
        moto.sdk_config().await,
        slipway::app::config::Config::default().aws,
    ))));
    w.run_job(slipway::maintain::currency::CALENDAR_JOB).await;
    let now = ledger().await;
    assert_eq!(now["support"], "standard", "EKS's answer wins: {now}");
    assert_eq!(now["standard_support_ends"], "2027-01-15");
    assert_eq!(now["hourly_extra_usd"], 0.0);

    let versions = || async {
        let (status, body) = w
            .call(
                Method::GET,
                "/api/v1/kubernetes-versions",
                &w.dev,
                json!(null),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().unwrap().clone()
    };
    let entry = |items: &[Value], v: &str| items.iter().find(|e| e["version"] == v).cloned();
    assert_eq!(
        entry(&versions().await, "1.34").unwrap()["source"]["kind"],
        "eks"
    );
    let admin = w.app.token(&[Role::Admin], &[Role::Admin]).await;
    let correct = |token: String, version: &'static str, body: Value| {
        let w = &w;
        async move {
            w.call(
                Method::PUT,
                &format!("/api/v1/kubernetes-versions/{version}"),
                &token,
                body,
            )
            .await
        }
    };
    let dates = json!({"standard_support_ends": "2027-10-31", "extended_support_ends": "2028-10-31",
                       "note": "https://aws.amazon.com/about-aws/whats-new/ (1.36 on EKS)"});
    let (status, _) = correct(w.engineer.clone(), "1.36", dates.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins correct the calendar");
    let (status, problem) = correct(
        admin.clone(),
        "1.x",
        json!({"standard_support_ends": "2027-10-31", "extended_support_ends": "2026-01-01",
               "note": ""}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        ["version", "extended_support_ends", "note"],
        "{problem}"
    );
    let (status, body) = correct(admin.clone(), "1.36", dates.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"]["kind"], "admin");
    assert_eq!(body["standard_support_ends"], "2027-10-31");
    let (status, _) = correct(admin.clone(), "1.34", dates).await;
    assert_eq!(status, StatusCode::OK);
    let items = versions().await;
    assert_eq!(
        entry(&items, "1.34").unwrap()["standard_support_ends"],
        "2027-01-15",
        "an admin's correction never overrides EKS's own answer"
    );
    assert_eq!(entry(&items, "1.36").unwrap()["source"]["kind"], "admin");
    let page = w
        .app
        .get_as("/kubernetes-versions", &admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("EKS DescribeClusterVersions, read on"),
        "{page}"
    );
    assert!(page.contains("Correct a version"), "{page}");
    workers.shutdown(Duration::from_secs(5)).await;
}

/// The upgrade of `id` once it has ended (succeeded, failed or rejected), as the engineer
/// reads the preview.
async fn until_upgrade_ended(w: &World, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, preview) = w
            .call(
                Method::GET,
                &format!("/api/v1/environments/{id}/upgrade"),
                &w.engineer,
                json!(null),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{preview}");
        let last = &preview["history"][0];
        if ["succeeded", "failed", "rejected"].contains(&last["state"].as_str().unwrap_or("")) {
            return preview;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the upgrade did not end: {preview}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The engineer asks for `version` on `id`.
async fn ask_upgrade(w: &World, id: &str, version: &str) -> (StatusCode, Value) {
    w.call(
        Method::POST,
        &format!("/api/v1/environments/{id}/upgrade"),
        &w.engineer,
        json!({ "kubernetes_version": version }),
    )
    .await
}

#[tokio::test]
async fn an_upgrade_is_previewed_approved_by_someone_else_and_moves_the_cluster_one_minor_version()
{
    let w = World::at("2026-12-03T09:00:00Z").await;
    w.approve_revision(|doc| doc["environment_types"][0]["kubernetes_version"] = json!("1.34"))
        .await;
    let workers = w.workers(w.simulated());
    let id = w.approved("ledger").await;
    w.until_state(&id, "ready", Duration::from_secs(60)).await;

    let path = format!("/api/v1/environments/{id}/upgrade");
    let (status, preview) = w.call(Method::GET, &path, &w.engineer, json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["current_version"], "1.34");
    assert_eq!(preview["current_support"], "extended");
    assert_eq!(preview["next_version"], "1.35");
    assert_eq!(preview["next_support"], "standard");
    assert_eq!(preview["approvals_required"], 1);
    let steps: Vec<&str> = preview["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "pre-checks",
            "control-plane",
            "addons",
            "nodegroup",
            "health"
        ]
    );

    // The requester of the environment is not the platform team.
    let (status, _) = w
        .call(
            Method::POST,
            &path,
            &w.dev,
            json!({"kubernetes_version": "1.35"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (bad, says) in [
        ("1.36", "one minor version at a time"),
        ("1.33", "one minor version at a time"),
        ("latest", "such as 1.35"),
        ("1.35\u{0}", "control character"),
    ] {
        let (status, problem) = ask_upgrade(&w, &id, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "kubernetes_version");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{bad}: {problem}"
        );
    }
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM environment_upgrade")
            .fetch_one(&w.app.pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 0, "refused asks leave nothing");

    // Withdrawn by whoever asked, not by anyone else.
    let (status, _) = ask_upgrade(&w, &id, "1.35").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let cancel = format!("{path}/cancel");
    let (status, _) = w.call(Method::POST, &cancel, &w.reviewer, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "approvers reject instead");
    let (status, withdrawn) = w.call(Method::POST, &cancel, &w.engineer, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{withdrawn}");
    assert_eq!(withdrawn["state"], "cancelled");
    let (status, _) = w.call(Method::POST, &cancel, &w.engineer, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing left to withdraw");

    let (status, upgrade) = ask_upgrade(&w, &id, "1.35").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{upgrade}");
    assert_eq!(upgrade["state"], "awaiting_approval");
    assert!(upgrade["job_id"].is_null(), "nothing runs before approval");
    let (status, _) = ask_upgrade(&w, &id, "1.35").await;
    assert_eq!(status, StatusCode::CONFLICT, "one open upgrade at a time");

    let world = &w;
    let decide = |token: &str, verdict: &str, body: Value| {
        let token = token.to_owned();
        let path = format!("{path}/{verdict}");
        async move { world.call(Method::POST, &path, &token, body).await }
    };
    let (status, problem) = decide(&w.engineer, "approve", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no self-approval: {problem}");
    let (status, problem) = decide(&w.reviewer, "reject", json!({"reason": "  "})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "reason");
    // A node group an earlier upgrade left behind stops this one before anything changes.
    let nodes_at = |version: &'static str| async move {
        sqlx::query(
            "UPDATE simulated_resource SET body = body || jsonb_build_object('version', $1::text)
             WHERE kind = 'nodegroup'",
        )
        .bind(version)
        .execute(&world.app.pool)
        .await
        .unwrap();
    };
    nodes_at("1.33").await;
    let (status, upgrade) = decide(&w.reviewer, "approve", json!({"comment": "go"})).await;
    assert_eq!(status, StatusCode::OK, "{upgrade}");
    assert_eq!(upgrade["state"], "running");
    assert!(upgrade["job_id"].is_i64(), "{upgrade}");
    let (status, _) = decide(&w.reviewer, "approve", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing awaits a decision");
    let preview = until_upgrade_ended(&w, &id).await;
    let failed = &preview["history"][0];
    assert_eq!(failed["state"], "failed", "{preview}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("still runs Kubernetes 1.33"),
        "{failed}"
    );
    assert_eq!(preview["current_version"], "1.34", "nothing changed");
    nodes_at("1.34").await;
    let (status, upgrade) = w
        .call(
            Method::POST,
            &format!("{path}/retry"),
            &w.engineer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{upgrade}");

    let preview = until_upgrade_ended(&w, &id).await;
    assert_eq!(preview["history"][0]["state"], "succeeded", "{preview}");
    assert_eq!(preview["current_version"], "1.35");
    let (_, maintain) = w
        .call(
            Method::GET,
            "/api/v1/platforms/shop/maintain",
            &w.engineer,
            json!(null),
        )
        .await;
    assert_eq!(maintain["items"][0]["kubernetes_version"], "1.35");
    assert_eq!(maintain["items"][0]["support"], "standard");
    assert_eq!(
        maintain["items"][0]["upgrade"],
        json!({"to_version": "1.35", "state": "succeeded"})
    );
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_event WHERE subject = 'environment:' || $1 ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    for expected in [
        "environment.upgrade_requested",
        "environment.upgrading",
        "environment.upgraded",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    // The next upgrade starts from the new version.
    let (status, problem) = ask_upgrade(&w, &id, "1.35").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_upgrade_page_asks_decides_and_shows_errors_beside_the_field_without_javascript() {
    let w = World::at("2026-12-03T09:00:00Z").await;
    w.approve_revision(|doc| doc["environment_types"][0]["kubernetes_version"] = json!("1.34"))
        .await;
    let workers = w.workers(w.simulated());
    let id = w.approved("ledger").await;
    w.until_state(&id, "ready", Duration::from_secs(60)).await;
    // Two members of the platform team, each in their own browser.
    let browser = || async {
        let email = w.app.platform_member("shop", ENGINEER).await;
        let browser = support::client();
        w.app.login(&browser, &email, support::PASSWORD).await;
        browser
    };
    let (asker, approver) = (browser().await, browser().await);
    let url = w.app.url(&format!("/environments/{id}/upgrade"));
    let page = |b: &reqwest::Client| {
        let request = b.get(&url);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let post = |b: &reqwest::Client, action: &str, form: Vec<(&'static str, String)>| {
        let request = b
            .post(w.app.url(&format!("/environments/{id}/{action}")))
            .form(&form);
        async move { request.send().await.unwrap() }
    };
    let html = page(&asker).await;
    assert!(html.contains("Kubernetes <strong>1.34</strong>"), "{html}");
    assert!(html.contains("UpdateClusterVersion 1.34 → 1.35"), "{html}");
    let csrf = support::csrf_token(&html);
    let res = post(
        &asker,
        "upgrade",
        vec![
            ("_csrf", csrf.clone()),
            ("kubernetes_version", "1.37".into()),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"id="u-version-error""#) && html.contains("the next is 1.35"),
        "the form again, the error beside the field: {html}"
    );
    assert!(html.contains(r#"value="1.37""#), "what was typed is kept");
    let res = post(
        &asker,
        "upgrade",
        vec![("kubernetes_version", "1.35".into())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "CSRF is checked");
    let res = post(
        &asker,
        "upgrade",
        vec![
            ("_csrf", csrf.clone()),
            ("kubernetes_version", "1.35".into()),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = page(&asker).await;
    assert!(html.contains("Upgrade asked for"), "{html}");
    assert!(
        html.contains("You asked for it"),
        "no decision buttons for whoever asked: {html}"
    );
    let html = page(&approver).await;
    assert!(html.contains("Approve upgrade"), "{html}");
    let csrf = support::csrf_token(&html);
    let res = post(
        &approver,
        "upgrade/reject",
        vec![("_csrf", csrf.clone()), ("reason", " ".into())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"id="u-reason-error""#), "{html}");
    let res = post(&approver, "upgrade/approve", vec![("_csrf", csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let preview = until_upgrade_ended(&w, &id).await;
    assert_eq!(preview["history"][0]["state"], "succeeded", "{preview}");
    let html = page(&approver).await;
    assert!(html.contains("1.34 → 1.35"), "{html}");
    assert!(html.contains("Kubernetes <strong>1.35</strong>"), "{html}");
    workers.shutdown(Duration::from_secs(5)).await;
}

/// What moto has of the cluster `name` in `account`: its version, its node group's, its
/// add-ons' and how many version updates the cluster and the node group had.
async fn upgraded_state(
    moto: &Moto,
    account: &str,
    name: &str,
    group: &str,
) -> (String, String, Vec<String>, usize, usize) {
    let eks = moto.eks_in(account).await;
    let cluster = eks.describe_cluster().name(name).send().await.unwrap();
    let nodegroup = eks
        .describe_nodegroup()
        .cluster_name(name)
        .nodegroup_name(group)
        .send()
        .await
        .unwrap();
    let mut addons = Vec::new();
    for addon in eks
        .list_addons()
        .cluster_name(name)
        .send()
        .await
        .unwrap()
        .addons()
    {
        let a = eks
            .describe_addon()
            .cluster_name(name)
            .addon_name(addon)
            .send()
            .await
            .unwrap();
        addons.push(a.addon().unwrap().addon_version().unwrap().to_owned());
    }
    let updates = |nodegroup: Option<&str>| {
        let eks = eks.clone();
        let nodegroup = nodegroup.map(str::to_owned);
        async move {
            eks.list_updates()
                .name(name)
                .set_nodegroup_name(nodegroup)
                .send()
                .await
                .unwrap()
                .update_ids()
                .len()
        }
    };
    (
        cluster.cluster().unwrap().version().unwrap().to_owned(),
        nodegroup.nodegroup().unwrap().version().unwrap().to_owned(),
        addons,
        updates(None).await,
        updates(Some(group)).await,
    )
}

#[tokio::test]
async fn an_upgrade_blocked_by_an_insight_then_killed_after_update_cluster_version_ends_with_one_update()
 {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let w = World::new().await;
    w.approve_revision(|doc| doc["environment_types"][0]["kubernetes_version"] = json!("1.34"))
        .await;
    let workers = w.workers(aws_cloud(&moto, &kube).await);
    let id = w.approved("ledger").await;
    let env = w.until_state(&id, "ready", Duration::from_secs(120)).await;
    let account = env["outputs"]["account_id"].as_str().unwrap().to_owned();
    let cluster = env["outputs"]["cluster_name"].as_str().unwrap().to_owned();
    let group = format!("{cluster}-nodes");
    let set_insights = |insights: Value| {
        let url = format!("{}/moto-api/slipway/eks-insights", moto.url);
        async move {
            let res = support::client()
                .post(url)
                .body(insights.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
        }
    };
    set_insights(json!([{"id": "i-1", "name": "Kubelet version skew",
        "kubernetesVersion": "1.35", "status": "ERROR",
        "reason": "Node kubelet versions are more than one minor version behind"}]))
    .await;

    // Blocked before anything changes, with the insight's reason.
    let (status, upgrade) = ask_upgrade(&w, &id, "1.35").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{upgrade}");
    let path = format!("/api/v1/environments/{id}/upgrade");
    let (status, upgrade) = w
        .call(
            Method::POST,
            &format!("{path}/approve"),
            &w.reviewer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{upgrade}");
    let preview = until_upgrade_ended(&w, &id).await;
    let failed = &preview["history"][0];
    assert_eq!(failed["state"], "failed", "{preview}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("Kubelet version skew") && error.contains("nothing was changed"),
        "{error}"
    );
    assert_eq!(
        upgraded_state(&moto, &account, &cluster, &group).await.3,
        0,
        "no update asked for"
    );
    workers.shutdown(Duration::from_secs(5)).await;

    // The insight is dealt with; the retry's worker dies right after UpdateClusterVersion.
    set_insights(json!([])).await;
    let proxy = support::moto::CrashProxy::start(
        &moto.url,
        "POST",
        &format!("/clusters/{cluster}/updates"),
    )
    .await;
    let mut first = worker_process(&w, &moto, &proxy.url, &kube);
    proxy.arm(first.0.id());
    let (status, upgrade) = w
        .call(
            Method::POST,
            &format!("{path}/retry"),
            &w.engineer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{upgrade}");
    proxy.until_killed(Duration::from_secs(60)).await;
    first.0.wait().unwrap();
    let (version, _, _, updates, _) = upgraded_state(&moto, &account, &cluster, &group).await;
    assert_eq!((version.as_str(), updates), ("1.35", 1), "EKS took it");

    let second = worker_process(&w, &moto, &moto.url, &kube);
    let preview = until_upgrade_ended(&w, &id).await;
    drop(second);
    assert_eq!(preview["history"][0]["state"], "succeeded", "{preview}");
    let (version, nodegroup, addons, cluster_updates, nodegroup_updates) =
        upgraded_state(&moto, &account, &cluster, &group).await;
    assert_eq!(version, "1.35");
    assert_eq!(nodegroup, "1.35");
    assert_eq!(
        (cluster_updates, nodegroup_updates),
        (1, 1),
        "one version update each, across the kill"
    );
    assert!(!addons.is_empty());
    for addon in &addons {
        assert!(addon.ends_with("-default-for-1.35"), "{addons:?}");
    }
    let job = preview["history"][0]["job_id"].as_i64().unwrap();
    let (_, job) = w
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{job}"),
            &w.engineer,
            json!(null),
        )
        .await;
    let control = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "control-plane")
        .unwrap();
    assert_eq!(control["attempt"], 2, "the step ran again: {control}");
    assert_eq!(preview["current_version"], "1.35");
}

/// The roll-out at `path` once it is in `state` (the workers move it on).
async fn until_rollout(w: &World, path: &str, state: &str) -> Value {
    until_rollout_within(w, path, state, Duration::from_secs(60)).await
}

async fn until_rollout_within(w: &World, path: &str, state: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (status, rollout) = w.call(Method::GET, path, &w.engineer, json!(null)).await;
        assert_eq!(status, StatusCode::OK, "{rollout}");
        if rollout["state"] == state {
            return rollout;
        }
        assert!(
            started.elapsed() < within,
            "the roll-out did not become {state}: {}",
            serde_json::to_string_pretty(&rollout).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The new revision of the roll-out tests: mutual TLS permissive, no default-deny policies.
fn relaxed_mesh(doc: &mut Value) {
    doc["service_mesh"]["mtls"] = json!("permissive");
    doc["security"]["default_deny_network_policies"] = json!(false);
}

/// `(resource, effect)` of a plan preview.
fn effects(plan: &Value) -> Vec<(String, String)> {
    plan.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["resource"].as_str().unwrap().to_owned(),
                c["effect"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_roll_out_in_two_waves_pauses_on_a_failure_resumes_and_leaves_every_environment_on_the_new_revision()
 {
    let w = World::at("2026-12-03T09:00:00Z").await;
    let workers = w.workers(w.simulated());
    let mut ids = Vec::new();
    for name in ["canary", "ledger", "orders"] {
        ids.push(w.approved(name).await);
    }
    for id in &ids {
        w.until_state(id, "ready", Duration::from_secs(60)).await;
    }
    let (canary, ledger, orders) = (&ids[0], &ids[1], &ids[2]);
    w.approve_revision(relaxed_mesh).await;

    // What revision 2 would change, per environment, before anyone starts anything.
    let base = "/api/v1/platforms/shop/rollouts";
    let (status, overview) = w.call(Method::GET, base, &w.engineer, json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["revision"], 2);
    let envs = overview["environments"].as_array().unwrap();
    assert_eq!(envs.len(), 3, "{overview}");
    let plan = effects(&envs[0]["plan"]);
    assert!(
        plan.iter()
            .any(|(r, e)| r.starts_with("PeerAuthentication") && e == "update"),
        "{plan:?}"
    );
    assert!(
        plan.iter()
            .any(|(r, e)| r.starts_with("NetworkPolicy") && e == "delete"),
        "{plan:?}"
    );
    assert!(envs.iter().all(|e| e["blocked"].is_null()), "{overview}");

    // Developers do not roll out; bad input names its field and leaves nothing behind.
    let body = json!({"revision": 2, "waves": [[canary], [ledger, orders]]});
    let (status, _) = w.call(Method::POST, base, &w.dev, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let unknown = uuid::Uuid::new_v4().to_string();
    for (bad, field, says) in [
        (
            json!({"revision": 1, "waves": [[canary]]}),
            "revision",
            "approved revision, 2",
        ),
        (
            json!({"revision": 2, "waves": []}),
            "waves",
            "at least one wave",
        ),
        (
            json!({"revision": 2, "waves": [[canary], []]}),
            "waves[1]",
            "at least one",
        ),
        (
            json!({"revision": 2, "waves": [[canary], [unknown]]}),
            "waves[1][0]",
            "No environment",
        ),
        (
            json!({"revision": 2, "waves": [[canary], [canary]]}),
            "waves[1][0]",
            "earlier place",
        ),
    ] {
        let (status, problem) = w.call(Method::POST, base, &w.engineer, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
        let error = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("{bad}: {problem}"));
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{problem}"
        );
    }
    assert_eq!(
        count(&w.app.pool, "SELECT count(*) FROM rollout").await,
        0,
        "refused roll-outs leave nothing"
    );

    // The canary's roll-out job fails once.
    sqlx::query(
        "INSERT INTO simulated_fault (operation, remaining, message)
         VALUES ('kubernetes:apply', 1, 'the API server refused the object')",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let (status, started) = w.call(Method::POST, base, &w.engineer, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["state"], "awaiting_approval");
    assert_eq!(started["waves"][0]["approvals_required"], 1);
    let path = format!("{base}/{}", started["id"].as_str().unwrap());
    let (status, _) = w.call(Method::POST, base, &w.engineer, body).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one open roll-out per platform"
    );
    let (status, _) = w
        .call(
            Method::POST,
            &format!("{path}/approve"),
            &w.engineer,
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "whoever started it does not approve it"
    );
    let (status, approved) = w
        .call(
            Method::POST,
            &format!("{path}/approve"),
            &w.reviewer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");

    let paused = until_rollout(&w, &path, "paused").await;
    let first = &paused["waves"][0]["environments"][0];
    assert_eq!(first["state"], "failed", "{paused}");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("refused the object"),
        "{paused}"
    );
    assert!(
        paused["error"].as_str().unwrap().contains("canary"),
        "{paused}"
    );
    for env in paused["waves"][1]["environments"].as_array().unwrap() {
        assert_eq!(env["state"], "pending", "wave 2 waits: {paused}");
        assert_eq!(env["revision"], 1, "{paused}");
    }

    let (status, resumed) = w
        .call(
            Method::POST,
            &format!("{path}/resume"),
            &w.engineer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    let waiting = until_rollout(&w, &path, "awaiting_approval").await;
    assert_eq!(waiting["current_wave"], 1, "{waiting}");
    assert_eq!(waiting["waves"][0]["environments"][0]["state"], "succeeded");
    assert_eq!(waiting["waves"][0]["environments"][0]["revision"], 2);
    let (status, _) = w
        .call(
            Method::POST,
            &format!("{path}/approve"),
            &w.reviewer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let done = until_rollout(&w, &path, "completed").await;
    for wave in done["waves"].as_array().unwrap() {
        for env in wave["environments"].as_array().unwrap() {
            assert_eq!(env["state"], "succeeded", "{done}");
            assert_eq!(env["revision"], 2, "{done}");
        }
    }

    // Every environment records it, the cluster has the new objects, and the ones the revision
    // dropped are gone.
    let (_, maintain) = w
        .call(
            Method::GET,
            "/api/v1/platforms/shop/maintain",
            &w.engineer,
            json!(null),
        )
        .await;
    let revisions: Vec<&Value> = maintain["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["revision"])
        .collect();
    assert_eq!(revisions, [&json!(2), &json!(2), &json!(2)], "{maintain}");
    for id in [canary, ledger, orders] {
        let plan = plan_of(&w, id).await;
        let objects = plan_objects(&plan);
        assert!(
            !objects.iter().any(|o| o.starts_with("NetworkPolicy")),
            "{objects:?}"
        );
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM simulated_resource
             WHERE kind = 'object' AND name LIKE 'NetworkPolicy %' AND gone_at IS NULL
               AND id LIKE '%' || $1 || '%'",
        )
        .bind(w.environment(id).await["name"].as_str().unwrap())
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
        assert_eq!(live, 0, "the dropped policies are deleted");
    }
    let (_, overview) = w.call(Method::GET, base, &w.engineer, json!(null)).await;
    assert_eq!(overview["open"], json!(null), "{overview}");
    let audit: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_event WHERE subject LIKE 'platform:shop/rollout:%' ORDER BY id",
    )
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(
        audit,
        [
            "rollout.started",
            "rollout.wave_approved",
            "rollout.resumed",
            "rollout.wave_approved"
        ]
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_roll_out_pages_start_approve_skip_and_roll_back_without_javascript() {
    let w = World::at("2026-12-03T09:00:00Z").await;
    let workers = w.workers(w.simulated());
    let (first, second) = (w.approved("canary").await, w.approved("ledger").await);
    for id in [&first, &second] {
        w.until_state(id, "ready", Duration::from_secs(60)).await;
    }
    w.approve_revision(relaxed_mesh).await;
    let browser = || async {
        let email = w.app.platform_member("shop", ENGINEER).await;
        let browser = support::client();
        w.app.login(&browser, &email, support::PASSWORD).await;
        browser
    };
    let (starter, approver) = (browser().await, browser().await);
    let get = |b: &reqwest::Client, path: &str| {
        let request = b.get(w.app.url(path));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let post = |b: &reqwest::Client, path: &str, form: Vec<(String, String)>| {
        let request = b.post(w.app.url(path)).form(&form);
        async move { request.send().await.unwrap() }
    };
    let html = get(&starter, "/platforms/shop/rollouts").await;
    assert!(html.contains("What revision 2 changes"), "{html}");
    assert!(html.contains("PeerAuthentication"), "{html}");
    assert!(
        html.contains("deleted"),
        "the dropped NetworkPolicies: {html}"
    );
    let csrf = support::csrf_token(&html);
    let form = |fields: &[(&str, &str)]| -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (wave_1, wave_2) = (format!("wave_{first}"), format!("wave_{second}"));
    let res = post(
        &starter,
        "/platforms/shop/rollouts",
        form(&[("_csrf", &csrf), ("revision", "2"), (&wave_1, "eleven")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(&format!(r#"id="{wave_1}-error""#)) && html.contains("Choose a wave"),
        "the form again, the error beside the environment: {html}"
    );
    let res = post(
        &starter,
        "/platforms/shop/rollouts",
        form(&[("revision", "2"), (&wave_1, "1")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "CSRF is checked");
    let res = post(
        &starter,
        "/platforms/shop/rollouts",
        form(&[
            ("_csrf", &csrf),
            ("revision", "2"),
            (&wave_1, "1"),
            (&wave_2, "3"),
        ]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = res.headers()["location"].to_str().unwrap().to_owned();
    let api = format!("/api/v1{page}");
    let html = get(&starter, &page).await;
    assert!(html.contains("Roll-out started"), "{html}");
    assert!(html.contains("You started this roll-out"), "{html}");
    assert!(html.contains("Wave 2"), "waves 1 and 3 close up: {html}");
    let html = get(&approver, &page).await;
    assert!(html.contains("Approve wave 1"), "{html}");
    let approver_csrf = support::csrf_token(&html);
    let res = post(
        &approver,
        &format!("{page}/approve"),
        form(&[("_csrf", &approver_csrf)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // Approved, the wave runs; once the canary is done, wave 2 awaits its approvals.
    let waiting = until_rollout(&w, &api, "awaiting_approval").await;
    assert_eq!(waiting["current_wave"], 1, "{waiting}");

    // Skipping the only environment of wave 2 completes the roll-out.
    let res = post(
        &starter,
        &format!("{page}/skip"),
        form(&[("_csrf", &csrf), ("environment_id", &second)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let done = until_rollout(&w, &api, "completed").await;
    assert_eq!(done["waves"][1]["environments"][0]["state"], "skipped");
    assert_eq!(done["waves"][1]["environments"][0]["revision"], 1);
    assert_eq!(done["waves"][0]["environments"][0]["revision"], 2);

    // Rolling back puts the canary on revision 1's plan again, policies and all.
    let res = post(
        &starter,
        &format!("{page}/rollback"),
        form(&[("_csrf", &csrf)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = until_rollout(&w, &api, "rolled_back").await;
    assert_eq!(back["waves"][0]["environments"][0]["state"], "rolled_back");
    assert_eq!(back["waves"][0]["environments"][0]["revision"], 1);
    let objects = plan_objects(&plan_of(&w, &first).await);
    assert!(
        objects.iter().any(|o| o.starts_with("NetworkPolicy")),
        "{objects:?}"
    );
    let html = get(&starter, &page).await;
    assert!(html.contains("rolled back"), "{html}");
    workers.shutdown(Duration::from_secs(5)).await;
}

/// The live PeerAuthentication's mode and how many default-deny NetworkPolicies the real API
/// server holds.
async fn mesh_state(kube: &Kube) -> (String, usize) {
    let objects = kube.objects().await;
    let mode = objects
        .iter()
        .find(|o| o["kind"] == "PeerAuthentication")
        .and_then(|o| o["spec"]["mtls"]["mode"].as_str())
        .unwrap_or_default()
        .to_owned();
    let policies = objects
        .iter()
        .filter(|o| o["kind"] == "NetworkPolicy")
        .count();
    (mode, policies)
}

#[tokio::test]
async fn a_roll_out_refused_by_the_real_api_server_pauses_and_resumed_then_killed_applies_every_object_once()
 {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let w = World::new().await;
    let workers = w.workers(aws_cloud(&moto, &kube).await);
    let id = w.approved("ledger").await;
    w.until_state(&id, "ready", Duration::from_secs(120)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let (mode, policies) = mesh_state(&kube).await;
    assert_eq!(mode, "STRICT");
    assert!(policies > 0, "revision 1 denies by default");
    w.approve_revision(relaxed_mesh).await;

    let base = "/api/v1/platforms/shop/rollouts";
    let (status, started) = w
        .call(
            Method::POST,
            base,
            &w.engineer,
            json!({"revision": 2, "waves": [[id]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let path = format!("{base}/{}", started["id"].as_str().unwrap());
    let mut first = worker_process(&w, &moto, &moto.url, &kube);
    // The cluster's admission refuses the changed PeerAuthentication: the roll-out pauses with
    // the API server's reason, and the policies revision 2 drops are still there.
    kube.refuse_writes_of("security.istio.io", "peerauthentications")
        .await;
    let (status, _) = w
        .call(
            Method::POST,
            &format!("{path}/approve"),
            &w.reviewer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let paused = until_rollout_within(&w, &path, "paused", Duration::from_secs(120)).await;
    let failed = &paused["waves"][0]["environments"][0];
    assert_eq!(failed["state"], "failed", "{paused}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("peerauthentications are not allowed"),
        "{paused}"
    );
    let (mode, policies) = mesh_state(&kube).await;
    assert_eq!(mode, "STRICT");
    assert!(policies > 0, "nothing was pruned");
    kube.allow_writes_of("security.istio.io", "peerauthentications")
        .await;
    let (status, _) = w
        .call(
            Method::POST,
            &format!("{path}/resume"),
            &w.engineer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Killed once the API server has the new mode: in the Kubernetes step (which then waits for
    // the platform to be healthy), before the prune.
    let mode = || async {
        kube.object(
            "security.istio.io/v1",
            "PeerAuthentication",
            Some("istio-system"),
            "default",
        )
        .await
        .map(|o| o["spec"]["mtls"]["mode"].clone())
    };
    let started = Instant::now();
    while mode().await != Some(json!("PERMISSIVE")) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the roll-out never reached the PeerAuthentication"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    let second = worker_process(&w, &moto, &moto.url, &kube);
    let done = until_rollout_within(&w, &path, "completed", Duration::from_secs(180)).await;
    drop(second);
    assert_eq!(done["waves"][0]["environments"][0]["revision"], 2, "{done}");
    let job = done["waves"][0]["environments"][0]["job_id"]
        .as_i64()
        .unwrap();
    let (_, job) = w
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{job}"),
            &w.engineer,
            json!(null),
        )
        .await;
    let kubernetes = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "kubernetes")
        .unwrap();
    assert_eq!(
        kubernetes["attempt"], 2,
        "killed in the step, run again: {kubernetes}"
    );
    assert_eq!(mesh_state(&kube).await, ("PERMISSIVE".to_owned(), 0));
    let planned = plan_objects(&plan_of(&w, &id).await);
    assert_eq!(
        applied_objects(&kube).await,
        planned,
        "every object of revision 2 once, none of what it dropped"
    );
}
