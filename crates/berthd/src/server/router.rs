//! Method + path → handler. Image names carry `/` and `:` raw in the path,
//! so routes are matched on segments by hand rather than by a pattern router.
//! Each segment is percent-decoded exactly once, as Go's router does to the
//! whole path: `/networks/test%2001` names `test 01`, and `%252F` stays
//! `%2F`.

use http::Method;

use super::http::{ApiResult, Req};
use super::{
    archive, build, buildkit, containers, exec, images, metrics, networks, page_not_found, plugins,
    system, volumes, CommonHeaders, Ctx,
};

/// Routes a request; the answer comes with its route's template (the
/// request metric's `route` label), `other` for what matched no route.
pub async fn route(ctx: &Ctx, req: Req) -> (&'static str, ApiResult) {
    let decoded: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let m = req.method.clone();
    match (m, segs.as_slice()) {
        (Method::GET | Method::HEAD, ["_ping"]) => ("/_ping", system::ping(req).await),
        // berth's own, unversioned (dockerd: 404 here; no Docker client asks).
        (Method::GET | Method::HEAD, ["_berth", "metrics"]) if !req.versioned => {
            ("/_berth/metrics", { metrics::api(&ctx.engine).await })
        }
        (Method::GET, ["version"]) => ("/version", system::version(&*ctx.engine, req).await),
        (Method::GET, ["info"]) => ("/info", system::info(&*ctx.engine, req).await),
        (Method::POST, ["auth"]) => ("/auth", system::auth(&*ctx.engine, req).await),
        (Method::GET, ["system", "df"]) => ("/system/df", system::df(&*ctx.engine, req).await),
        (Method::GET, ["events"]) => ("/events", system::events(&*ctx.engine, req).await),
        (Method::POST, ["containers", "create"]) => ("/containers/create", {
            containers::create(&ctx.engine.containers, req).await
        }),
        (Method::GET, ["containers", "json"]) => ("/containers/json", {
            containers::list(&*ctx.engine.containers, req).await
        }),
        (Method::POST, ["containers", "prune"]) => ("/containers/prune", {
            containers::prune(&*ctx.engine.containers, req).await
        }),
        (Method::GET, ["containers", id, "json"]) => ("/containers/{id}/json", {
            containers::inspect(&*ctx.engine.containers, req, id).await
        }),
        (Method::GET, ["containers", name @ .., "json"]) if name.len() > 1 => {
            ("/containers/{id}/json", {
                containers::inspect(&*ctx.engine.containers, req, &name.join("/")).await
            })
        }
        (Method::POST, ["containers", id, "start"]) => ("/containers/{id}/start", {
            containers::start(&ctx.engine.containers, req, id).await
        }),
        (Method::POST, ["containers", id, "stop"]) => ("/containers/{id}/stop", {
            containers::stop(&*ctx.engine.containers, req, id).await
        }),
        (Method::POST, ["containers", id, "restart"]) => ("/containers/{id}/restart", {
            containers::restart(&ctx.engine.containers, req, id).await
        }),
        (Method::POST, ["containers", id, "kill"]) => ("/containers/{id}/kill", {
            containers::kill(&*ctx.engine.containers, req, id).await
        }),
        (Method::POST, ["containers", id, "pause"]) => ("/containers/{id}/pause", {
            containers::pause(&*ctx.engine.containers, req, id, true).await
        }),
        (Method::POST, ["containers", id, "unpause"]) => ("/containers/{id}/unpause", {
            containers::pause(&*ctx.engine.containers, req, id, false).await
        }),
        (Method::POST, ["containers", id, "rename"]) => ("/containers/{id}/rename", {
            containers::rename(&*ctx.engine.containers, req, id).await
        }),
        (Method::POST, ["containers", id, "wait"]) => ("/containers/{id}/wait", {
            containers::wait(&*ctx.engine.containers, req, id).await
        }),
        // dockerd writes the attach status line itself, without the common headers.
        (Method::POST, ["containers", id, "attach"]) => ("/containers/{id}/attach", {
            containers::attach(&ctx.engine.containers, req, id)
                .await
                .map(|r| CommonHeaders::Omitted.mark(r))
        }),
        (Method::POST, ["containers", id, "resize"]) => ("/containers/{id}/resize", {
            containers::resize(&*ctx.engine.containers, req, id).await
        }),
        (Method::POST, ["containers", id, "exec"]) => ("/containers/{id}/exec", {
            exec::create(&*ctx.engine.containers, req, id).await
        }),
        (Method::GET, ["containers", id, "top"]) => ("/containers/{id}/top", {
            containers::top(&*ctx.engine.containers, req, id).await
        }),
        (Method::GET, ["containers", id, "stats"]) => ("/containers/{id}/stats", {
            containers::stats(&ctx.engine.containers, req, id).await
        }),
        (Method::POST, ["containers", id, "update"]) => ("/containers/{id}/update", {
            containers::update(&*ctx.engine.containers, req, id).await
        }),
        (Method::GET, ["containers", id, "export"]) => ("/containers/{id}/export", {
            containers::export(&ctx.engine.containers, req, id).await
        }),
        (Method::GET, ["containers", id, "changes"]) => ("/containers/{id}/changes", {
            containers::changes(&*ctx.engine.containers, req, id).await
        }),
        (Method::POST, ["commit"]) => (
            "/commit",
            containers::commit(&ctx.engine.containers, req).await,
        ),
        (Method::GET, ["containers", id, "logs"]) => ("/containers/{id}/logs", {
            containers::logs(&ctx.engine.containers, req, id).await
        }),
        (Method::DELETE, ["containers", id]) => ("/containers/{id}", {
            containers::remove(&*ctx.engine.containers, req, id).await
        }),
        // Link names (`parent/alias`) carry a `/`, as dockerd's `{name:.*}`.
        (Method::DELETE, ["containers", name @ ..]) if name.len() > 1 => ("/containers/{id}", {
            containers::remove(&*ctx.engine.containers, req, &name.join("/")).await
        }),
        (Method::HEAD, ["containers", id, "archive"]) => ("/containers/{id}/archive", {
            archive::head(&ctx.engine.containers, req, id).await
        }),
        (Method::GET, ["containers", id, "archive"]) => ("/containers/{id}/archive", {
            archive::get(&ctx.engine.containers, req, id).await
        }),
        (Method::PUT, ["containers", id, "archive"]) => ("/containers/{id}/archive", {
            archive::put(&ctx.engine.containers, req, id).await
        }),
        (Method::POST, ["exec", id, "start"]) => (
            "/exec/{id}/start",
            exec::start(&ctx.engine.containers, req, id).await,
        ),
        (Method::POST, ["exec", id, "resize"]) => ("/exec/{id}/resize", {
            exec::resize(&*ctx.engine.containers, req, id).await
        }),
        (Method::GET, ["exec", id, "json"]) => ("/exec/{id}/json", {
            exec::inspect(&*ctx.engine.containers, req, id).await
        }),
        (Method::GET, ["networks"]) => ("/networks", networks::list(&*ctx.engine, req).await),
        (Method::POST, ["networks", "create"]) => (
            "/networks/create",
            networks::create(&*ctx.engine, req).await,
        ),
        (Method::POST, ["networks", "prune"]) => {
            ("/networks/prune", networks::prune(&*ctx.engine, req).await)
        }
        (Method::GET, ["networks", id]) => (
            "/networks/{id}",
            networks::inspect(&*ctx.engine, req, id).await,
        ),
        (Method::DELETE, ["networks", id]) => (
            "/networks/{id}",
            networks::remove(&*ctx.engine, req, id).await,
        ),
        (Method::POST, ["networks", id, "connect"]) => ("/networks/{id}/connect", {
            networks::connect(&ctx.engine, req, id).await
        }),
        (Method::POST, ["networks", id, "disconnect"]) => ("/networks/{id}/disconnect", {
            networks::disconnect(&*ctx.engine, req, id).await
        }),
        (Method::GET, ["volumes"]) => ("/volumes", volumes::list(&*ctx.engine, req).await),
        (Method::POST, ["volumes", "create"]) => {
            ("/volumes/create", volumes::create(&*ctx.engine, req).await)
        }
        (Method::POST, ["volumes", "prune"]) => (
            "/volumes/prune",
            volumes::prune(ctx.engine.clone(), req).await,
        ),
        (Method::GET, ["volumes", name]) => (
            "/volumes/{name}",
            volumes::inspect(&*ctx.engine, req, name).await,
        ),
        (Method::DELETE, ["volumes", name]) => (
            "/volumes/{name}",
            volumes::remove(ctx.engine.clone(), req, name).await,
        ),
        (Method::GET, ["images", "json"]) => {
            ("/images/json", images::list(&*ctx.engine, req).await)
        }
        (Method::POST, ["images", "create"]) => (
            "/images/create",
            images::create(ctx.engine.clone(), req).await,
        ),
        (Method::POST, ["images", "load"]) => {
            ("/images/load", images::load(ctx.engine.clone(), req).await)
        }
        (Method::GET, ["images", "get"]) => (
            "/images/get",
            images::save(ctx.engine.clone(), req, None).await,
        ),
        (Method::GET, ["images", "search"]) => {
            ("/images/search", images::search(&*ctx.engine, req).await)
        }
        (Method::POST, ["images", "prune"]) => (
            "/images/prune",
            images::prune(ctx.engine.clone(), req).await,
        ),
        (Method::GET, ["distribution", name @ .., "json"]) if !name.is_empty() => {
            ("/distribution/{name}/json", {
                images::distribution(&*ctx.engine, req, &images::name_of(name)).await
            })
        }
        (Method::GET, ["images", name @ .., "json"]) if !name.is_empty() => {
            ("/images/{name}/json", {
                images::inspect(&*ctx.engine, req, &images::name_of(name)).await
            })
        }
        (Method::GET, ["images", name @ .., "history"]) if !name.is_empty() => {
            ("/images/{name}/history", {
                images::history(&*ctx.engine, req, &images::name_of(name)).await
            })
        }
        (Method::GET, ["images", name @ .., "get"]) if !name.is_empty() => {
            ("/images/{name}/get", {
                let n = images::name_of(name);
                images::save(ctx.engine.clone(), req, Some(&n)).await
            })
        }
        (Method::POST, ["images", name @ .., "tag"]) if !name.is_empty() => {
            ("/images/{name}/tag", {
                images::tag(&*ctx.engine, req, &images::name_of(name)).await
            })
        }
        (Method::POST, ["images", name @ .., "push"]) if !name.is_empty() => {
            ("/images/{name}/push", {
                images::push(&*ctx.engine, req, &images::name_of(name)).await
            })
        }
        (Method::DELETE, ["images", name @ ..]) if !name.is_empty() => ("/images/{name}", {
            images::delete(ctx.engine.clone(), req, &images::name_of(name)).await
        }),
        (Method::POST, ["build"]) => ("/build", build::build(ctx, req).await),
        // BuildKit's hijacks write their own 101, without the common headers.
        (Method::POST, ["grpc"]) => (
            "/grpc",
            buildkit::grpc(ctx, req)
                .await
                .map(|r| CommonHeaders::Omitted.mark(r)),
        ),
        (Method::POST, ["session"]) => (
            "/session",
            buildkit::session(ctx, req)
                .await
                .map(|r| CommonHeaders::Omitted.mark(r)),
        ),
        (Method::POST, ["build", "prune"]) => ("/build/prune", build::prune(ctx, req).await),
        (Method::POST, ["build", "cancel"]) => ("/build/cancel", build::cancel(ctx, req).await),
        (Method::GET, ["plugins"]) => ("/plugins", plugins::list(&*ctx.engine, req).await),
        (Method::POST, ["plugins", "create"]) => (
            "/plugins/create",
            plugins::create(ctx.engine.clone(), req).await,
        ),
        (Method::GET, ["plugins", "privileges"]) => (
            "/plugins/privileges",
            plugins::remote::privileges(ctx, req).await,
        ),
        (Method::POST, ["plugins", "pull"]) => {
            ("/plugins/pull", plugins::remote::pull(ctx, req).await)
        }
        (Method::POST, ["plugins", name @ .., "upgrade"]) if !name.is_empty() => {
            ("/plugins/{name}/upgrade", {
                plugins::remote::upgrade(ctx, req, &name.join("/")).await
            })
        }
        (Method::POST, ["plugins", name @ .., "push"]) if !name.is_empty() => {
            ("/plugins/{name}/push", {
                plugins::remote::push(ctx, req, &name.join("/")).await
            })
        }
        (Method::GET, ["plugins", name @ .., "json"]) if !name.is_empty() => {
            ("/plugins/{name}/json", {
                plugins::inspect(&*ctx.engine, req, &name.join("/")).await
            })
        }
        (Method::POST, ["plugins", name @ .., "enable"]) if !name.is_empty() => {
            ("/plugins/{name}/enable", {
                plugins::enable(ctx.engine.clone(), req, &name.join("/")).await
            })
        }
        (Method::POST, ["plugins", name @ .., "disable"]) if !name.is_empty() => {
            ("/plugins/{name}/disable", {
                plugins::disable(ctx.engine.clone(), req, &name.join("/")).await
            })
        }
        (Method::POST, ["plugins", name @ .., "set"]) if !name.is_empty() => {
            ("/plugins/{name}/set", {
                plugins::set(&*ctx.engine, req, &name.join("/")).await
            })
        }
        (Method::DELETE, ["plugins", name @ ..]) if !name.is_empty() => ("/plugins/{name}", {
            plugins::remove(ctx.engine.clone(), req, &name.join("/")).await
        }),
        (_, ["swarm", ..])
        | (_, ["services", ..])
        | (_, ["nodes", ..])
        | (_, ["tasks", ..])
        | (_, ["secrets", ..])
        | (_, ["configs", ..]) => ("other", system::swarm_unavailable(req).await),
        // dockerd's router answers unknown routes outside its middlewares.
        _ => (
            "other",
            Ok(CommonHeaders::Omitted.mark(page_not_found().into_response())),
        ),
    }
}
