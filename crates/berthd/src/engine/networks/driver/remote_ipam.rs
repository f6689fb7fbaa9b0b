//! An IPAM driver that is a plugin (`/IpamDriver.*`, libnetwork's remote
//! IPAM protocol). Its answers are checked before they are believed: a
//! pool needs an ID and a CIDR, an address a CIDR.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::remote::{call, parse_cidr};
use super::{
    AddressSpaces, IpamCapabilities, IpamDriver, ReleaseAddressRequest, ReleasePoolRequest,
    RequestAddressRequest, RequestAddressResponse, RequestPoolRequest, RequestPoolResponse,
    ADDRESS_OWNER,
};
use crate::engine::plugins::{self, Plugins};
use crate::engine::{EngineError, Result};

pub struct RemoteIpam {
    name: String,
    plugins: Arc<Plugins>,
}

impl RemoteIpam {
    pub fn new(name: &str, plugins: Arc<Plugins>) -> Self {
        Self {
            name: name.to_string(),
            plugins,
        }
    }

    fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &str,
        body: &B,
    ) -> Result<T> {
        let p = self.plugins.get(&self.name, plugins::IPAM)?;
        call(&p, &format!("{}.{method}", plugins::IPAM), body)
    }

    fn garbage(&self, method: &str, what: String) -> EngineError {
        EngineError::internal(format!(
            "{}.{method}: bad answer from plugin {:?}: {what}",
            plugins::IPAM,
            self.name
        ))
    }

    /// `GetDefaultAddressSpaces`; the local one names the pools asked for.
    pub fn address_spaces(&self) -> Result<AddressSpaces> {
        self.call("GetDefaultAddressSpaces", &serde_json::Value::Null)
    }

    fn request_pool_now(&self, req: &RequestPoolRequest) -> Result<RequestPoolResponse> {
        let r: RequestPoolResponse = self.call("RequestPool", req)?;
        if r.pool_id.is_empty() {
            return Err(self.garbage("RequestPool", "no PoolID".into()));
        }
        match parse_cidr(&r.pool) {
            Some((ip, _)) if ip.is_ipv6() == req.v6 => Ok(r),
            _ => {
                // What it did hand out goes back.
                let back = ReleasePoolRequest {
                    pool_id: r.pool_id.clone(),
                };
                if let Err(e) = self.release_pool(&back) {
                    tracing::warn!(error = %e, "releasing a pool");
                }
                Err(self.garbage("RequestPool", format!("invalid Pool {:?}", r.pool)))
            }
        }
    }
}

/// The address part of a CIDR: what `ReleaseAddress` names.
fn bare(a: &str) -> String {
    a.split('/').next().unwrap_or_default().to_string()
}

impl IpamDriver for RemoteIpam {
    fn get_capabilities(&self) -> IpamCapabilities {
        // As libnetwork: a plugin that does not answer has none.
        self.call("GetCapabilities", &serde_json::Value::Null)
            .unwrap_or_default()
    }

    fn get_default_address_spaces(&self) -> AddressSpaces {
        self.address_spaces().unwrap_or_default()
    }

    fn request_pool<'a>(
        &'a self,
        req: &'a RequestPoolRequest,
    ) -> BoxFuture<'a, Result<RequestPoolResponse>> {
        Box::pin(async move { self.request_pool_now(req) })
    }

    fn release_pool(&self, req: &ReleasePoolRequest) -> Result<()> {
        let _: serde_json::Value = self.call("ReleasePool", req)?;
        Ok(())
    }

    fn request_address(&self, req: &RequestAddressRequest) -> Result<RequestAddressResponse> {
        let mut wire = RequestAddressRequest {
            address: bare(&req.address),
            ..req.clone()
        };
        // berth's own bookkeeping is not the plugin's business.
        wire.options.remove(ADDRESS_OWNER);
        let r: RequestAddressResponse = self.call("RequestAddress", &wire)?;
        if r.address.is_empty() {
            return Err(self.garbage("RequestAddress", "No address returned".into()));
        }
        if parse_cidr(&r.address).is_none() {
            return Err(self.garbage("RequestAddress", format!("invalid Address {:?}", r.address)));
        }
        Ok(r)
    }

    fn release_address(&self, req: &ReleaseAddressRequest) -> Result<()> {
        let wire = ReleaseAddressRequest {
            pool_id: req.pool_id.clone(),
            address: bare(&req.address),
        };
        let _: serde_json::Value = self.call("ReleaseAddress", &wire)?;
        Ok(())
    }
}
