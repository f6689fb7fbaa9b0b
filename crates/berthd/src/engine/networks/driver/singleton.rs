//! The `host` and `null` drivers: a container on their network keeps the
//! host's stack or gets none, so every endpoint operation is a no-op. Each
//! has one network, the predefined one; like libnetwork's, they refuse to
//! make another or to delete it.

use futures_util::future::BoxFuture;

use super::{
    Capabilities, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest,
    DeleteNetworkRequest, EndpointOperInfoResponse, EndpointRequest, JoinRequest, JoinResponse,
    NetworkDriver, ProgramExternalConnectivityRequest,
};
use crate::engine::{EngineError, Result};

pub struct Singleton {
    network_type: &'static str,
}

impl Singleton {
    pub fn host() -> Self {
        Self {
            network_type: "host",
        }
    }

    pub fn null() -> Self {
        Self {
            network_type: "null",
        }
    }
}

impl NetworkDriver for Singleton {
    fn get_capabilities(&self) -> Capabilities {
        Capabilities::local()
    }

    fn create_network<'a>(&'a self, _req: &'a CreateNetworkRequest) -> BoxFuture<'a, Result<()>> {
        let err = EngineError::Forbidden(format!(
            "only one instance of \"{}\" network is allowed",
            self.network_type
        ));
        Box::pin(std::future::ready(Err(err)))
    }

    fn delete_network<'a>(&'a self, _req: &'a DeleteNetworkRequest) -> BoxFuture<'a, Result<()>> {
        let err = EngineError::Forbidden(format!(
            "network of type \"{}\" cannot be deleted",
            self.network_type
        ));
        Box::pin(std::future::ready(Err(err)))
    }

    fn create_endpoint(&self, _req: &CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        Ok(CreateEndpointResponse::default())
    }

    fn endpoint_oper_info(&self, _req: &EndpointRequest) -> Result<EndpointOperInfoResponse> {
        Ok(EndpointOperInfoResponse::default())
    }

    fn delete_endpoint(&self, _req: &EndpointRequest) -> Result<()> {
        Ok(())
    }

    fn join<'a>(&'a self, _req: &'a JoinRequest) -> BoxFuture<'a, Result<JoinResponse>> {
        Box::pin(std::future::ready(Ok(JoinResponse::default())))
    }

    fn leave(&self, _req: &EndpointRequest) -> Result<()> {
        Ok(())
    }

    fn program_external_connectivity<'a>(
        &'a self,
        _req: &'a ProgramExternalConnectivityRequest,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn revoke_external_connectivity(&self, _req: &EndpointRequest) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<T>(f: BoxFuture<'_, T>) -> T {
        futures_util::FutureExt::now_or_never(f).expect("ready")
    }

    #[test]
    fn host_and_null_refuse_a_second_network_and_its_removal() {
        for (d, kind) in [(Singleton::host(), "host"), (Singleton::null(), "null")] {
            assert_eq!(d.get_capabilities(), Capabilities::local());
            let req = CreateNetworkRequest {
                network_id: "n2".into(),
                ..Default::default()
            };
            match block(d.create_network(&req)) {
                Err(EngineError::Forbidden(m)) => assert_eq!(
                    m,
                    format!("only one instance of \"{kind}\" network is allowed")
                ),
                other => panic!("{other:?}"),
            }
            let del = DeleteNetworkRequest {
                network_id: "n1".into(),
            };
            match block(d.delete_network(&del)) {
                Err(EngineError::Forbidden(m)) => {
                    assert_eq!(m, format!("network of type \"{kind}\" cannot be deleted"))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn host_and_null_endpoints_are_no_ops() {
        for d in [Singleton::host(), Singleton::null()] {
            let ep = EndpointRequest {
                network_id: "n".into(),
                endpoint_id: "e".into(),
            };
            let created = d
                .create_endpoint(&CreateEndpointRequest::default())
                .expect("create");
            assert_eq!(created.interface, None);
            let joined = block(d.join(&JoinRequest::default())).expect("join");
            assert_eq!(joined, JoinResponse::default());
            block(d.program_external_connectivity(&Default::default())).expect("program");
            assert_eq!(
                d.endpoint_oper_info(&ep).expect("info").value.port_map,
                None
            );
            d.revoke_external_connectivity(&ep).expect("revoke");
            d.leave(&ep).expect("leave");
            d.delete_endpoint(&ep).expect("delete");
        }
    }
}
