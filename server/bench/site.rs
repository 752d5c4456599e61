//! A running Slipway for the HTTP benchmarks, on a scratch database: three platforms, twenty
//! developers, a signed-in platform engineer (a session cookie and an API token) and requests
//! seeded in bulk, served on a loopback port.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

use crate::app::config::Config;
use crate::auth::{Role, RoleSet, UserId};

pub struct Site {
    pub base: String,
    /// The platform engineer's session, as a `Cookie` header's value.
    pub cookie: String,
    /// The platform engineer's API token.
    pub token: String,
    pool: PgPool,
    platforms: Vec<Uuid>,
    users: Vec<Uuid>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    progress: crate::jobs::progress::ProgressHub,
}

impl Site {
    pub async fn start(pool: &PgPool) -> anyhow::Result<Site> {
        let pool = pool.clone();
        let engineer = RoleSet::from_iter([Role::PlatformEngineer]);
        let developer = RoleSet::from_iter([Role::Developer]);
        let reviewer =
            crate::auth::users::create_local(&pool, "pe@bench.test", "Reviewer", &engineer, None)
                .await?;
        let mut users = Vec::new();
        for i in 0..20 {
            let email = format!("user-{i}@bench.test");
            let name = format!("Developer {i}");
            users.push(
                crate::auth::users::create_local(&pool, &email, &name, &developer, None)
                    .await?
                    .0,
            );
        }
        let mut platforms = Vec::new();
        for i in 1..=3 {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO platform (id, slug, name, owner_team, created_by) VALUES ($1, $2, $3, 'Platform', $4)",
            )
            .bind(id)
            .bind(format!("bench-{i}"))
            .bind(format!("Bench platform {i}"))
            .bind(reviewer.0)
            .execute(&pool)
            .await?;
            platforms.push(id);
        }
        let (_, token) =
            crate::auth::tokens::create(&pool, UserId(reviewer.0), "bench", &engineer, None)
                .await?;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state =
            crate::app::AppState::new(pool.clone(), Config::default(), false, &base).await?;
        let cookie = format!(
            "{}={}",
            state.cookies.session_name(),
            crate::auth::session::start(
                &pool,
                UserId(reviewer.0),
                state.session_lifetimes(),
                None,
                None,
                None
            )
            .await?
        );
        let progress = state.progress.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::app::server::serve(
            listener,
            crate::app::router::router(state),
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));
        Ok(Site {
            base,
            cookie,
            token,
            pool,
            platforms,
            users,
            stop,
            server,
            progress,
        })
    }

    /// Seeds requests `from..=to` (numbers name them, so seeding can continue where it stopped).
    pub async fn seed(&self, from: u32, to: u32) -> anyhow::Result<()> {
        let (pool, platforms, users) = (&self.pool, &self.platforms, &self.users);
        sqlx::query(
            "INSERT INTO environment (id, platform_id, environment_type, name, purpose, parameters,
                 lifecycle, ttl_hours, max_ttl_hours, state, requested_by, blueprint_number,
                 approvals_required, approver_roles, approval_count, sla_hours, cost_hourly_micros,
                 cost_max_hourly_micros, plan, awaiting_since, sla_due_at, pending_until, decided_at,
                 created_at)
             SELECT gen_random_uuid(), $3[1 + n % 3], (ARRAY['dev', 'test', 'perf', 'prod'])[1 + n % 4],
                 'env-' || n, 'Seeded request ' || n,
                 '{\"instance_type\": \"m6i.large\", \"min_nodes\": 2, \"max_nodes\": 4, \"data_services\": []}',
                 CASE WHEN n % 4 = 2 THEN 'ephemeral' ELSE 'long_lived' END,
                 CASE WHEN n % 4 = 2 THEN 8 END, CASE WHEN n % 4 = 2 THEN 72 END,
                 CASE WHEN n % 10 = 0 THEN 'submitted'
                      ELSE (ARRAY['approved', 'rejected', 'expired', 'ready', 'torn_down', 'cancelled',
                                  'failed', 'provisioning', 'tearing_down'])[1 + n % 9] END,
                 $4[1 + n % array_length($4, 1)], 1, CASE WHEN n % 4 = 3 THEN 2 ELSE 1 END,
                 '{platform_engineer}', 0, 24, 1000000, 2000000, '[]',
                 CASE WHEN n % 10 = 0 THEN created END, created + interval '24 hours',
                 created + interval '168 hours',
                 CASE WHEN n % 10 <> 0 THEN created + interval '1 hour' END, created
             FROM (SELECT n, now() - n * interval '77 seconds' AS created
                   FROM generate_series($1::int, $2::int) n) s",
        )
        .bind(from as i32)
        .bind(to as i32)
        .bind(platforms)
        .bind(users)
        .execute(pool)
        .await
        .context("seeding requests")?;
        sqlx::query("ANALYZE environment").execute(pool).await?;
        Ok(())
    }

    /// Gives `environment` the plan a real one carries: the built-in blueprint's `dev` type with
    /// every data service it offers, every AWS action and Kubernetes object in full. Returns
    /// its actions and its size as JSON. The bulk seed leaves plans empty (100,000 real plans
    /// are about 10 GB of JSON); of the measured addresses only an environment's own page and
    /// API read a plan, so the environment they visit is the one given a real plan.
    pub async fn give_real_plan(&self, environment: Uuid) -> anyhow::Result<(usize, usize)> {
        let blueprint = crate::define::blueprint::Blueprint::from_template("bench-1", None);
        let ty = blueprint
            .environment_type("dev")
            .context("the built-in blueprint has a `dev` type")?;
        let parameters = crate::provision::plan::Parameters {
            instance_type: ty.node_group.instance_types[0].clone(),
            min_nodes: ty.node_group.min_size,
            max_nodes: ty.node_group.max_size,
            data_services: ty.data_services.clone(),
        };
        let plan = crate::provision::plan::build(
            &crate::provision::plan::PlanInput {
                platform_slug: "bench-1",
                blueprint: &blueprint,
                name: "env-real-plan",
                parameters: &parameters,
                teams: &[],
                account_email_domain: "bench.test",
            },
            ty,
        );
        let json = serde_json::to_string(&plan)?;
        sqlx::query("UPDATE environment SET plan = $2::jsonb, parameters = $3 WHERE id = $1")
            .bind(environment)
            .bind(&json)
            .bind(sqlx::types::Json(&parameters))
            .execute(&self.pool)
            .await
            .context("giving the measured environment a real plan")?;
        Ok((plan.len(), json.len()))
    }

    /// Stops the server (and what it started).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.progress.stop();
    }
}
