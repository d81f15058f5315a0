//! [`ServerStore`]: the vector store on a Qdrant server (`QDRANT_URL`, gRPC port 6334), through
//! `qdrant-client`, for deployments where several workers share one collection or the data
//! outgrows one machine.
//!
//! The collection is created when missing with the same layout as the edge engine's (named dense
//! vector, Cosine; sparse [`SPARSE`] with the IDF modifier; the same payload indexes), and an
//! existing one is checked: a different dense size or a BM25 vector without IDF fails at start
//! naming the collection. Queries are the same as the edge engine's, built from the same
//! [`Ranking`] and [`Condition`]s: a dense or sparse nearest query with the filter, or two
//! prefetches of [`prefetch_limit`] candidates (each with the filter) fused by RRF with
//! [`RRF_K`]. Writes wait for the server to apply them (`wait = true`), so a search right after
//! an upsert sees it.
//!
//! Differences from the edge engine, by nature of a shared server: the count [`VectorStore::delete`]
//! returns is counted just before the delete (a write by another worker in between can make it
//! off by that write), and optimization is the server's own business.

use std::collections::HashMap;

use async_trait::async_trait;
use qdrant_client::qdrant::{
    self, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Modifier, PointStruct, PrefetchQueryBuilder,
    Query as EngineQuery, QueryPointsBuilder, RrfBuilder, ScrollPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder, VectorInput,
    VectorParamsBuilder, VectorsConfigBuilder, r#match::MatchValue, point_id::PointIdOptions,
    vectors_config,
};
use qdrant_client::{Payload as EnginePayload, Qdrant, QdrantError};

use super::{
    Condition, DENSE, Filter, Hit, INTEGER_FIELDS, KEYWORD_FIELDS, Payload, Point, Query, RRF_K,
    Ranking, SPARSE, Sparse, StoreError, VectorStore, prefetch_limit,
};

/// Where the server is and which collection to use.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// gRPC URL, e.g. `http://qdrant:6334`.
    pub url: String,
    /// The server's API key, if it has one.
    pub api_key: Option<String>,
    /// The collection (created if missing).
    pub collection: String,
}

/// A collection on a Qdrant server. Cheap to clone (one gRPC channel pool).
#[derive(Clone)]
pub struct ServerStore {
    client: Qdrant,
    collection: String,
    dimensions: usize,
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore")
            .field("collection", &self.collection)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

impl ServerStore {
    /// Connects, creates the collection if missing (or checks the existing one's dense size) and
    /// its payload indexes.
    pub async fn connect(config: ServerConfig, dimensions: usize) -> Result<Self, StoreError> {
        if dimensions == 0 {
            return Err(StoreError::Invalid("dense vectors need dimensions".into()));
        }
        let client = Qdrant::from_url(&config.url)
            .api_key(config.api_key)
            .skip_compatibility_check()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("qdrant {}: {e}", config.url)))?;
        let store = Self {
            client,
            collection: config.collection,
            dimensions,
        };
        store.ensure_collection().await?;
        Ok(store)
    }

    /// Deletes the whole collection (tests, and an operator's re-index).
    pub async fn delete_collection(&self) -> Result<(), StoreError> {
        self.client
            .delete_collection(&self.collection)
            .await
            .map_err(engine)?;
        Ok(())
    }

    async fn ensure_collection(&self) -> Result<(), StoreError> {
        let name = &self.collection;
        if !self.client.collection_exists(name).await.map_err(engine)? {
            let mut dense = VectorsConfigBuilder::default();
            dense.add_named_vector_params(
                DENSE,
                VectorParamsBuilder::new(self.dimensions as u64, Distance::Cosine),
            );
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                SPARSE,
                SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
            );
            let created = self
                .client
                .create_collection(
                    CreateCollectionBuilder::new(name)
                        .vectors_config(dense)
                        .sparse_vectors_config(sparse),
                )
                .await;
            // Another worker may have created it in between: the check below decides.
            if let Err(e) = created
                && !self.client.collection_exists(name).await.map_err(engine)?
            {
                return Err(engine(e));
            }
        }
        let info = self
            .client
            .collection_info(name)
            .await
            .map_err(engine)?
            .result
            .ok_or_else(|| StoreError::Unavailable(format!("collection {name}: no info")))?;
        let dense_size = info
            .config
            .as_ref()
            .and_then(|c| c.params.as_ref())
            .and_then(|p| p.vectors_config.as_ref())
            .and_then(|v| match &v.config {
                Some(vectors_config::Config::ParamsMap(map)) => map.map.get(DENSE).map(|p| p.size),
                _ => None,
            });
        match dense_size {
            Some(size) if size == self.dimensions as u64 => {}
            Some(size) => {
                return Err(StoreError::Invalid(format!(
                    "collection {name} holds {size}-dimensional vectors but the embedder gives {}: \
                     a different embedding model needs a different collection",
                    self.dimensions
                )));
            }
            None => {
                return Err(StoreError::Invalid(format!(
                    "collection {name} has no `{DENSE}` vector: it was not made by this worker"
                )));
            }
        }
        let bm25_idf = info
            .config
            .as_ref()
            .and_then(|c| c.params.as_ref())
            .and_then(|p| p.sparse_vectors_config.as_ref())
            .and_then(|s| s.map.get(SPARSE))
            .is_some_and(|s| s.modifier == Some(Modifier::Idf as i32));
        if !bm25_idf {
            return Err(StoreError::Invalid(format!(
                "collection {name} has no `{SPARSE}` vector with IDF: it was not made by this worker"
            )));
        }
        let wanted = KEYWORD_FIELDS
            .iter()
            .map(|f| (*f, FieldType::Keyword))
            .chain(INTEGER_FIELDS.iter().map(|f| (*f, FieldType::Integer)));
        for (field, kind) in wanted {
            if info
                .payload_schema
                .get(field)
                .is_some_and(|s| s.data_type == kind as i32)
            {
                continue;
            }
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(name, field, kind).wait(true),
                )
                .await
                .map_err(engine)?;
        }
        Ok(())
    }

    async fn count_filtered(&self, filter: qdrant::Filter) -> Result<u64, StoreError> {
        let counted = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(filter)
                    .exact(true),
            )
            .await
            .map_err(engine)?;
        Ok(counted.result.map_or(0, |r| r.count))
    }
}

#[async_trait]
impl VectorStore for ServerStore {
    fn engine(&self) -> &'static str {
        "server"
    }

    async fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError> {
        for point in &points {
            point.check(self.dimensions)?;
        }
        if points.is_empty() {
            return Ok(());
        }
        let points = points
            .into_iter()
            .map(to_point)
            .collect::<Result<Vec<_>, _>>()?;
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true))
            .await
            .map_err(engine)?;
        Ok(())
    }

    async fn search(&self, query: Query) -> Result<Vec<Hit>, StoreError> {
        let ranking = query.ranking(self.dimensions)?;
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let filter = to_filter(&query.filter);
        let mut request = QueryPointsBuilder::new(&self.collection)
            .limit(query.limit as u64)
            .with_payload(true);
        if let Some(t) = query.score_threshold {
            request = request.score_threshold(t);
        }
        request = match ranking {
            Ranking::Dense(dense) => request.query(dense.to_vec()).using(DENSE).filter(filter),
            Ranking::Sparse(sparse) if sparse.indices.is_empty() => return Ok(Vec::new()),
            Ranking::Sparse(sparse) => request
                .query(EngineQuery::new_nearest(sparse_input(sparse)))
                .using(SPARSE)
                .filter(filter),
            Ranking::Hybrid(dense, sparse) => {
                let depth = prefetch_limit(query.limit) as u64;
                let mut request = request.add_prefetch(
                    PrefetchQueryBuilder::default()
                        .query(dense.to_vec())
                        .using(DENSE)
                        .filter(filter.clone())
                        .limit(depth),
                );
                if !sparse.indices.is_empty() {
                    request = request.add_prefetch(
                        PrefetchQueryBuilder::default()
                            .query(EngineQuery::new_nearest(sparse_input(sparse)))
                            .using(SPARSE)
                            .filter(filter)
                            .limit(depth),
                    );
                }
                request.query(EngineQuery::new_rrf(RrfBuilder::with_k(RRF_K as u32)))
            }
        };
        let found = self.client.query(request).await.map_err(engine)?;
        found
            .result
            .into_iter()
            // Also the server's threshold; this keeps the contract's `>=` exact at every stage.
            .filter(|p| query.score_threshold.is_none_or(|t| p.score >= t))
            .map(|p| to_hit(p.id, p.score, p.payload))
            .collect()
    }

    async fn delete(&self, filter: Filter) -> Result<u64, StoreError> {
        filter.check()?;
        let filter = to_filter(&filter);
        let n = self.count_filtered(filter.clone()).await?;
        if n > 0 {
            self.client
                .delete_points(
                    DeletePointsBuilder::new(&self.collection)
                        .points(filter)
                        .wait(true),
                )
                .await
                .map_err(engine)?;
        }
        Ok(n)
    }

    async fn count(&self, filter: Filter) -> Result<u64, StoreError> {
        filter.check()?;
        self.count_filtered(to_filter(&filter)).await
    }

    async fn scroll(&self, filter: Filter, limit: usize) -> Result<Vec<Hit>, StoreError> {
        filter.check()?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let found = self
            .client
            .scroll(
                ScrollPointsBuilder::new(&self.collection)
                    .filter(to_filter(&filter))
                    .limit(limit)
                    .with_payload(true)
                    .with_vectors(false),
            )
            .await
            .map_err(engine)?;
        found
            .result
            .into_iter()
            .map(|p| to_hit(p.id, 0.0, p.payload))
            .collect()
    }
}

fn to_filter(filter: &Filter) -> qdrant::Filter {
    qdrant::Filter::must(filter.conditions().into_iter().map(|c| match c {
        // Explicit keyword matches: the client turns a string with a space into a full-text
        // match, which a keyword index cannot answer.
        Condition::Is(field, value) => {
            qdrant::Condition::matches(field, MatchValue::Keyword(value))
        }
        Condition::AnyOf(field, values) => qdrant::Condition::matches(
            field,
            MatchValue::Keywords(qdrant::RepeatedStrings { strings: values }),
        ),
        Condition::Between(field, from, to) => qdrant::Condition::range(
            field,
            qdrant::Range {
                gte: from.map(|v| v as f64),
                lte: to.map(|v| v as f64),
                ..qdrant::Range::default()
            },
        ),
    }))
}

fn sparse_input(sparse: &Sparse) -> VectorInput {
    let pairs: Vec<(u32, f32)> = sparse
        .indices
        .iter()
        .copied()
        .zip(sparse.values.iter().copied())
        .collect();
    VectorInput::from(pairs.as_slice())
}

fn to_point(point: Point) -> Result<PointStruct, StoreError> {
    let sparse: Vec<(u32, f32)> = point
        .sparse
        .indices
        .into_iter()
        .zip(point.sparse.values)
        .collect();
    let vectors: HashMap<String, qdrant::Vector> = HashMap::from([
        (DENSE.to_owned(), qdrant::Vector::from(point.dense)),
        (SPARSE.to_owned(), qdrant::Vector::from(sparse)),
    ]);
    let json = serde_json::to_value(&point.payload)
        .map_err(|e| StoreError::Invalid(format!("payload: {e}")))?;
    let payload =
        EnginePayload::try_from(json).map_err(|e| StoreError::Invalid(format!("payload: {e}")))?;
    Ok(PointStruct::new(point.id.to_string(), vectors, payload))
}

fn to_hit(
    id: Option<qdrant::PointId>,
    score: f32,
    payload: HashMap<String, qdrant::Value>,
) -> Result<Hit, StoreError> {
    let id = match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => uuid::Uuid::parse_str(&s)
            .map_err(|e| StoreError::Unavailable(format!("point id {s}: {e}")))?,
        other => {
            return Err(StoreError::Unavailable(format!(
                "point {other:?} has no UUID: not written by this worker"
            )));
        }
    };
    let payload: Payload = EnginePayload::from(payload)
        .deserialize()
        .map_err(|e| StoreError::Unavailable(format!("point {id}: unreadable payload: {e}")))?;
    Ok(Hit { id, score, payload })
}

fn engine(e: QdrantError) -> StoreError {
    StoreError::Unavailable(format!("qdrant server: {e}"))
}
