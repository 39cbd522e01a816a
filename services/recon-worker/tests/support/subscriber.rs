//! A stand-in alert webhook subscriber: a real HTTP server that checks Standard
//! Webhooks signatures with its own code (an oracle independent of the worker's) and
//! can fail requests to make the worker retry.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The subscribers' secret in these tests (the Standard Webhooks example key).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the subscriber got.
#[derive(Debug, Clone)]
pub struct Received {
    pub hook: String,
    pub webhook_id: String,
    pub signature_valid: bool,
    pub body: serde_json::Value,
}

#[derive(Default)]
pub struct Subscriber {
    pub received: Mutex<Vec<Received>>,
    /// Failures left to answer, by hook name (`usize::MAX`: always).
    pub failures: Mutex<HashMap<String, usize>>,
}

/// The subscriber's own check, written from the Standard Webhooks spec (not the
/// worker's code): HMAC-SHA256 over `{id}.{timestamp}.{body}` with the key after
/// `whsec_`.
fn signature_ok(id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let key = STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|s| s == expected)
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    hook: web::Path<String>,
    subscriber: web::Data<Subscriber>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = header("webhook-id");
    let valid = signature_ok(
        &id,
        &header("webhook-timestamp"),
        &body,
        &header("webhook-signature"),
    );
    subscriber.received.lock().unwrap().push(Received {
        hook: hook.clone(),
        webhook_id: id,
        signature_valid: valid,
        body: serde_json::from_slice(&body).unwrap_or_default(),
    });
    let mut failures = subscriber.failures.lock().unwrap();
    let left = failures.entry(hook.into_inner()).or_default();
    if *left > 0 {
        *left = left.saturating_sub(1);
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::NoContent().finish()
}

impl Subscriber {
    /// Serves `POST /hooks/{name}` on a free loopback port; returns the port.
    pub fn serve(self: &Arc<Self>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::from(Arc::clone(self));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/hooks/{name}", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        port
    }
}
