//! Request bodies: read whole (with a `Content-Length` or chunked) up to a
//! size, then parsed into a type once. Too large is 413 (said before the
//! body is read when its length is declared); not JSON, or not the type, is
//! 400.

use bytes::{Buf, BufMut};
use futures_util::TryStreamExt;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

/// The body is over the route's limit (bytes).
#[derive(Debug)]
pub(crate) struct TooLarge(pub usize);

impl warp::reject::Reject for TooLarge {}

/// The body is not what the route takes: why.
#[derive(Debug)]
pub(crate) struct Malformed(pub String);

impl warp::reject::Reject for Malformed {}

/// The body's bytes, at most `max`.
pub(crate) fn bytes(
    max: usize,
) -> impl Filter<Extract = (bytes::Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<String>, body| async move {
            if let Some(declared) = declared {
                match declared.trim().parse::<u64>() {
                    Ok(n) if n > max as u64 => return Err(warp::reject::custom(TooLarge(max))),
                    Ok(_) => {}
                    Err(_) => {
                        let why = format!("Content-Length {declared:?} is not a length");
                        return Err(warp::reject::custom(Malformed(why)));
                    }
                }
            }
            let body = std::pin::pin!(body);
            collect(body, max).await
        })
}

async fn collect<S, B>(
    mut body: std::pin::Pin<&mut S>,
    max: usize,
) -> Result<bytes::Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut out = bytes::BytesMut::new();
    while let Some(mut chunk) = body
        .try_next()
        .await
        .map_err(|e| warp::reject::custom(Malformed(format!("the body did not arrive: {e}"))))?
    {
        if out.len() + chunk.remaining() > max {
            return Err(warp::reject::custom(TooLarge(max)));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            out.put_slice(part);
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

/// The body as a `T` from JSON, at most `max` bytes. The body is JSON
/// whatever its `Content-Type` says (`curl -d` sends a form type).
pub(crate) fn json<T>(max: usize) -> impl Filter<Extract = (T,), Error = Rejection> + Clone
where
    T: DeserializeOwned + Send,
{
    bytes(max).and_then(|body: bytes::Bytes| async move {
        serde_json::from_slice::<T>(&body)
            .map_err(|e| warp::reject::custom(Malformed(format!("bad body: {e}"))))
    })
}
