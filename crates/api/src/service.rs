//! `VerifierService`: the `rollcall.v1.Verifier` gRPC service over any `CampaignBackend`.
//!
//! Owns request validation (campaign ids, options, the order of the SubmitCampaign stream) and
//! the translation of each call into backend calls; the streaming calls are in `watch`. Every
//! call is first counted against its caller's rate, and `Verify` takes one of a bounded number
//! of slots (`limits`). It does not own authentication (`auth`) or the listener (`server`).

use std::sync::Arc;

use futures_util::StreamExt;
use rollcall_core::CampaignId;
use tonic::{Request, Response, Status, Streaming};

use crate::backend::{AddressChunks, BackendError, CampaignBackend, SubmitOptions};
use crate::limits::{Admission, CallLimits, Caller};
use crate::v1;
use crate::v1::submit_campaign_request::Payload;
use crate::v1::verifier_server::Verifier;
use crate::watch::{self, BoxStream, Closing, Watch, WatchPacing};

/// The Verifier service over a backend. Cheap to clone (the backend is shared).
pub struct VerifierService<B> {
    backend: Arc<B>,
    pacing: WatchPacing,
    closing: Closing,
    admission: Arc<Admission>,
}

impl<B> Clone for VerifierService<B> {
    fn clone(&self) -> Self {
        VerifierService {
            backend: Arc::clone(&self.backend),
            pacing: self.pacing,
            closing: self.closing.clone(),
            admission: Arc::clone(&self.admission),
        }
    }
}

impl<B: CampaignBackend> VerifierService<B> {
    /// The service over `backend`, with the default pacing and call limits.
    pub fn new(backend: Arc<B>) -> VerifierService<B> {
        VerifierService {
            backend,
            pacing: WatchPacing::default(),
            closing: None,
            admission: Arc::new(Admission::new(CallLimits::default())),
        }
    }

    /// Sets the call limits (concurrent `Verify` calls, calls per minute per caller).
    pub fn with_limits(mut self, limits: CallLimits) -> VerifierService<B> {
        self.admission = Arc::new(Admission::new(limits));
        self
    }

    /// Shares `admission` (call limits and their counters) with another front end: the HTTP
    /// API of the same process counts against the same rates and Verify slots.
    pub fn with_admission(mut self, admission: Arc<Admission>) -> VerifierService<B> {
        self.admission = admission;
        self
    }

    /// Counts the call against its caller's rate (the caller `BearerAuth` set; anonymous when
    /// the service is used without it).
    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let caller = request
            .extensions()
            .get::<Caller>()
            .copied()
            .unwrap_or(Caller::ANONYMOUS);
        self.admission.admit(caller)
    }

    /// Sets how watches poll and report.
    pub fn with_pacing(mut self, pacing: WatchPacing) -> VerifierService<B> {
        self.pacing = pacing;
        self
    }

    /// Ends open streams (with UNAVAILABLE) when `closing` turns true, so a graceful shutdown
    /// is not held up by watchers.
    pub(crate) fn with_closing(mut self, closing: tokio::sync::watch::Receiver<bool>) -> Self {
        self.closing = Some(closing);
        self
    }
}

fn campaign_id(raw: &str) -> Result<CampaignId, Status> {
    CampaignId::new(raw).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The rest of a SubmitCampaign stream, after the options, as plain chunks.
fn chunks(stream: Streaming<v1::SubmitCampaignRequest>) -> AddressChunks {
    Box::pin(stream.map(|message| match message {
        Ok(v1::SubmitCampaignRequest {
            payload: Some(Payload::Chunk(chunk)),
        }) => Ok(chunk.addresses),
        Ok(v1::SubmitCampaignRequest {
            payload: Some(Payload::Options(_)),
        }) => Err(BackendError::InvalidArgument(
            "options sent twice: they go in the first message only".into(),
        )),
        Ok(v1::SubmitCampaignRequest { payload: None }) => Err(BackendError::InvalidArgument(
            "a message with neither options nor a chunk".into(),
        )),
        Err(status) => Err(BackendError::Unavailable(format!(
            "the submission stream broke: {}",
            status.message()
        ))),
    }))
}

#[tonic::async_trait]
impl<B: CampaignBackend> Verifier for VerifierService<B> {
    async fn submit_campaign(
        &self,
        request: Request<Streaming<v1::SubmitCampaignRequest>>,
    ) -> Result<Response<v1::SubmitCampaignResponse>, Status> {
        self.admit(&request)?;
        let mut stream = request.into_inner();
        let options = match stream.message().await? {
            Some(v1::SubmitCampaignRequest {
                payload: Some(Payload::Options(options)),
            }) => options,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "the first message must carry the campaign options",
                ));
            }
            None => return Err(Status::invalid_argument("empty submission")),
        };
        let options = SubmitOptions::try_from(options)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let outcome = self.backend.submit(options, chunks(stream)).await?;
        tracing::info!(
            campaign = %outcome.campaign_id,
            accepted = outcome.accepted,
            duplicate = outcome.duplicate,
            invalid = outcome.invalid,
            "campaign submitted"
        );
        Ok(Response::new((&outcome).into()))
    }

    type WatchCampaignStream = BoxStream<v1::CampaignEvent>;

    async fn watch_campaign(
        &self,
        request: Request<v1::WatchCampaignRequest>,
    ) -> Result<Response<Self::WatchCampaignStream>, Status> {
        self.admit(&request)?;
        let request = request.into_inner();
        let campaign = campaign_id(&request.campaign_id)?;
        let first = self.backend.progress(&campaign).await?;
        let watch = Watch {
            backend: Arc::clone(&self.backend),
            campaign,
            include_results: request.include_results,
            pacing: self.pacing,
            closing: self.closing.clone(),
        };
        Ok(Response::new(watch.start(first)))
    }

    type ListResultsStream = BoxStream<v1::VerificationResult>;

    async fn list_results(
        &self,
        request: Request<v1::ListResultsRequest>,
    ) -> Result<Response<Self::ListResultsStream>, Status> {
        self.admit(&request)?;
        let campaign = campaign_id(&request.into_inner().campaign_id)?;
        // An unknown campaign fails the call, not an empty stream.
        self.backend.progress(&campaign).await?;
        Ok(Response::new(watch::list_results(
            Arc::clone(&self.backend),
            campaign,
            self.pacing,
            self.closing.clone(),
        )))
    }

    async fn get_campaign(
        &self,
        request: Request<v1::GetCampaignRequest>,
    ) -> Result<Response<v1::Progress>, Status> {
        self.admit(&request)?;
        let campaign = campaign_id(&request.into_inner().campaign_id)?;
        let snapshot = self.backend.progress(&campaign).await?;
        Ok(Response::new((&snapshot).into()))
    }

    async fn cancel_campaign(
        &self,
        request: Request<v1::CancelCampaignRequest>,
    ) -> Result<Response<v1::Progress>, Status> {
        self.admit(&request)?;
        let campaign = campaign_id(&request.into_inner().campaign_id)?;
        let snapshot = self.backend.cancel(&campaign).await?;
        tracing::info!(%campaign, state = ?snapshot.state, "campaign cancel requested");
        Ok(Response::new((&snapshot).into()))
    }

    async fn verify(
        &self,
        request: Request<v1::VerifyRequest>,
    ) -> Result<Response<v1::VerificationResult>, Status> {
        self.admit(&request)?;
        // Held until the verdict is in: a client cannot have more probes running than this.
        let _slot = self.admission.verify_slot()?;
        let address = request.into_inner().address;
        let verdict = self.backend.verify_one(&address).await?;
        Ok(Response::new((&verdict).into()))
    }
}
