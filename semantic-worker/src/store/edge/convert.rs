//! Translation between the store's types and Qdrant Edge's: queries (from the contract's
//! [`Ranking`]), filters (from its [`Condition`]s), points and hits.

use qdrant_edge::{
    self as qe, CountRequest, FieldCondition, Fusion, JsonPath, Match, NamedQuery, PointId,
    PointStructPersisted, Prefetch, QueryEnum, QueryRequest, Range, ScoringQuery, SparseVector,
    ValueVariants, VectorInternal, Vectors, WithPayloadInterface,
};

use crate::store::{
    Condition, DENSE, Filter, Hit, Payload, Point, Query, RRF_K, Ranking, SPARSE, Sparse,
    StoreError, prefetch_limit,
};

/// The engine's request for a query; `None` when it cannot match anything (a keyword search
/// whose words are all stop words).
pub(super) fn to_request(
    query: &Query,
    dimensions: usize,
) -> Result<Option<QueryRequest>, StoreError> {
    let ranking = query.ranking(dimensions)?;
    if query.limit == 0 {
        return Ok(None);
    }
    let filter = to_filter(&query.filter)?;
    let mut request = QueryRequest::new(query.limit);
    request.with_payload = WithPayloadInterface::Bool(true);
    request.score_threshold = query.score_threshold;
    match ranking {
        Ranking::Dense(dense) => {
            request.query = Some(nearest(DENSE, dense_vector(dense)));
            request.filter = Some(filter);
        }
        Ranking::Sparse(sparse) if sparse.indices.is_empty() => return Ok(None),
        Ranking::Sparse(sparse) => {
            request.query = Some(nearest(SPARSE, sparse_vector(sparse)?));
            request.filter = Some(filter);
        }
        Ranking::Hybrid(dense, sparse) => {
            let depth = prefetch_limit(query.limit);
            let mut prefetches = vec![prefetch(
                nearest(DENSE, dense_vector(dense)),
                depth,
                &filter,
            )];
            if !sparse.indices.is_empty() {
                prefetches.push(prefetch(
                    nearest(SPARSE, sparse_vector(sparse)?),
                    depth,
                    &filter,
                ));
            }
            request.prefetches = prefetches;
            request.query = Some(ScoringQuery::Fusion(Fusion::Rrf {
                k: RRF_K,
                weights: None,
            }));
        }
    }
    Ok(Some(request))
}

fn prefetch(query: ScoringQuery, limit: usize, filter: &qe::Filter) -> Prefetch {
    let mut p = Prefetch::new(limit);
    p.query = Some(query);
    p.filter = Some(filter.clone());
    p
}

fn nearest(using: &str, vector: VectorInternal) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
        query: vector,
        using: Some(using.into()),
    }))
}

fn dense_vector(dense: &[f32]) -> VectorInternal {
    VectorInternal::from(dense.to_vec())
}

fn sparse_vector(sparse: &Sparse) -> Result<VectorInternal, StoreError> {
    SparseVector::new(sparse.indices.clone(), sparse.values.clone())
        .map(VectorInternal::from)
        .map_err(|e| StoreError::Invalid(format!("sparse vector: {e}")))
}

pub(super) fn to_filter(filter: &Filter) -> Result<qe::Filter, StoreError> {
    let must = filter
        .conditions()
        .into_iter()
        .map(|c| {
            let condition = match c {
                Condition::Is(field, value) => FieldCondition::new_match(
                    key(field)?,
                    Match::new_value(ValueVariants::String(value)),
                ),
                Condition::AnyOf(field, values) => {
                    FieldCondition::new_match(key(field)?, Match::from(values))
                }
                Condition::Between(field, from, to) => FieldCondition::new_range(
                    key(field)?,
                    Range {
                        lt: None,
                        gt: None,
                        gte: from.map(|v| (v as f64).into()),
                        lte: to.map(|v| (v as f64).into()),
                    },
                ),
            };
            Ok(qe::Condition::Field(condition))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut f = qe::Filter::new();
    f.must = Some(must);
    Ok(f)
}

pub(super) fn count_request(filter: qe::Filter) -> CountRequest {
    CountRequest {
        filter: Some(filter),
        exact: true,
    }
}

pub(super) fn key(field: &str) -> Result<JsonPath, StoreError> {
    JsonPath::try_from(field)
        .map_err(|()| StoreError::Unavailable(format!("`{field}` is not a payload path")))
}

pub(super) fn to_record(point: Point) -> Result<PointStructPersisted, StoreError> {
    let sparse = qe::Vector::new_sparse(point.sparse.indices, point.sparse.values)
        .map_err(|e| StoreError::Invalid(format!("point {}: {e}", point.id)))?;
    let vectors = Vectors::new_named([
        (DENSE, qe::Vector::new_dense(point.dense)),
        (SPARSE, sparse),
    ]);
    let payload = match serde_json::to_value(&point.payload) {
        Ok(serde_json::Value::Object(map)) => qe::Payload(map),
        Ok(_) => return Err(StoreError::Invalid("a payload is not an object".into())),
        Err(e) => return Err(StoreError::Invalid(format!("payload: {e}"))),
    };
    Ok(PointStructPersisted {
        id: PointId::Uuid(point.id),
        vector: vectors.0.into(),
        payload: Some(payload),
    })
}

pub(super) fn to_hit(
    id: PointId,
    score: f32,
    payload: Option<qe::Payload>,
) -> Result<Hit, StoreError> {
    let PointId::Uuid(id) = id else {
        return Err(StoreError::Unavailable(format!(
            "point {id} has a numeric id: not written by this worker"
        )));
    };
    let payload =
        payload.ok_or_else(|| StoreError::Unavailable(format!("point {id} has no payload")))?;
    let payload: Payload = serde_json::from_value(serde_json::Value::Object(payload.0))
        .map_err(|e| StoreError::Unavailable(format!("point {id}: unreadable payload: {e}")))?;
    Ok(Hit { id, score, payload })
}
