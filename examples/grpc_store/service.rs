//! The `mandate.demo.v1.Images` service: image_store's rules over gRPC.
//! Shared by the `grpc_store` example, the demo and the tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tonic::{Request, Response, Status};
use tower_mandate::tonic::RequestExt;
use tower_mandate::{PrincipalId, permission};

#[allow(clippy::all, missing_docs, unreachable_pub)]
pub(crate) mod pb {
    include!("pb.rs");
}

use pb::images_server::Images;
use pb::{DeleteRequest, DeleteResponse, GetRequest, Image};

permission! {
    /// Read images.
    pub(crate) GrpcImagesRead = "images:read";
    /// Delete images.
    pub(crate) GrpcImagesDelete = "images:delete";
}

/// In-memory images: id → (owner, size). Owners are (issuer, subject).
#[derive(Clone, Default)]
pub(crate) struct Store(Arc<Mutex<HashMap<String, (PrincipalId, u64)>>>);

impl Store {
    /// The store with `img-1` owned by alice and `img-2` owned by bob, both
    /// users of `users_issuer`.
    pub(crate) fn seeded(users_issuer: &str) -> Self {
        let store = Store::default();
        store.insert("img-1", PrincipalId::new(users_issuer, "alice"), 11);
        store.insert("img-2", PrincipalId::new(users_issuer, "bob"), 22);
        store
    }

    pub(crate) fn insert(&self, id: &str, owner: PrincipalId, size: u64) {
        self.0.lock().unwrap().insert(id.to_owned(), (owner, size));
    }

    fn find(&self, id: &str) -> Option<(PrincipalId, u64)> {
        self.0.lock().unwrap().get(id).cloned()
    }
}

#[tonic::async_trait]
impl Images for Store {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Image>, Status> {
        // Authorization first: an unknown id is NOT_FOUND only after it.
        request.require::<GrpcImagesRead>()?;
        let id = request.get_ref().id.clone();
        let (owner, size) = self
            .find(&id)
            .ok_or_else(|| Status::not_found("no such image"))?;
        request.require_owner_of::<GrpcImagesRead>(&id, &owner)?;
        Ok(Response::new(Image {
            id,
            owner: owner.subject().to_owned(),
            size,
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        request.require::<GrpcImagesDelete>()?;
        let id = request.get_ref().id.clone();
        let (owner, _) = self
            .find(&id)
            .ok_or_else(|| Status::not_found("no such image"))?;
        // Checked before the mutation.
        request.require_owner_of::<GrpcImagesDelete>(&id, &owner)?;
        self.0.lock().unwrap().remove(&id);
        Ok(Response::new(DeleteResponse {}))
    }
}
