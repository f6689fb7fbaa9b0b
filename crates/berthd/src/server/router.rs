//! Method + path → handler. Image names carry `/` and `:` raw in the path,
//! so routes are matched on segments by hand rather than by a pattern router.

use http::Method;

use super::http::{ApiResult, Req};
use super::{images, page_not_found, system, Ctx};

pub async fn route(ctx: &Ctx, req: Req) -> ApiResult {
    let path = req.path.clone();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = req.method.clone();
    match (m, segs.as_slice()) {
        (Method::GET | Method::HEAD, ["_ping"]) => system::ping(ctx, req).await,
        (Method::GET, ["version"]) => system::version(ctx, req).await,
        (Method::GET, ["info"]) => system::info(ctx, req).await,
        (Method::GET, ["system", "df"]) => system::df(ctx, req).await,
        (Method::GET, ["events"]) => system::events(ctx, req).await,
        (Method::GET, ["images", "json"]) => images::list(ctx, req).await,
        (Method::POST, ["images", "create"]) => images::create(ctx, req).await,
        (Method::POST, ["images", "load"]) => images::load(ctx, req).await,
        (Method::GET, ["images", "get"]) => images::save(ctx, req, None).await,
        (Method::GET, ["images", "search"]) => images::search(ctx, req).await,
        (Method::POST, ["images", "prune"]) => images::prune(ctx, req).await,
        (Method::GET, ["images", name @ .., "json"]) if !name.is_empty() => {
            images::inspect(ctx, req, &images::name_of(name)).await
        }
        (Method::GET, ["images", name @ .., "history"]) if !name.is_empty() => {
            images::history(ctx, req, &images::name_of(name)).await
        }
        (Method::GET, ["images", name @ .., "get"]) if !name.is_empty() => {
            let n = images::name_of(name);
            images::save(ctx, req, Some(&n)).await
        }
        (Method::POST, ["images", name @ .., "tag"]) if !name.is_empty() => {
            images::tag(ctx, req, &images::name_of(name)).await
        }
        (Method::POST, ["images", name @ .., "push"]) if !name.is_empty() => {
            images::push(ctx, req, &images::name_of(name)).await
        }
        (Method::DELETE, ["images", name @ ..]) if !name.is_empty() => {
            images::delete(ctx, req, &images::name_of(name)).await
        }
        (Method::GET, ["plugins"]) => system::plugins(ctx, req).await,
        (Method::GET, ["plugins", .., "json"]) => system::plugin_inspect(ctx, req).await,
        (_, ["swarm", ..])
        | (_, ["services", ..])
        | (_, ["nodes", ..])
        | (_, ["tasks", ..])
        | (_, ["secrets", ..])
        | (_, ["configs", ..]) => system::swarm_unavailable(ctx, req).await,
        _ => Err(page_not_found()),
    }
}
