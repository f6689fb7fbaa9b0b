//! Method + path → handler. Image names carry `/` and `:` raw in the path,
//! so routes are matched on segments by hand rather than by a pattern router.

use http::Method;

use super::http::{ApiResult, Req};
use super::{page_not_found, system, Ctx};

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
