//! A row group's column writers, encoded by a few pool threads batch after batch, with no
//! barrier between batches.
//!
//! Each leaf column (a *lane*) takes its batches in order, one at a time; different
//! columns, and different batches of different columns, run at once. A thread that has
//! finished its share of one batch starts on the next batch's columns instead of waiting
//! for that batch's costliest column. With a barrier per batch, that wait left one of two
//! cores idle ~10% of a scraped CSV run (docs/performance.md, "Fifth pass").
//!
//! Closing a row group (last pages, dictionaries) is queued the same way, so it overlaps
//! the next row group's first batches.
//!
//! The bytes are those of a serial encode: a column's pages depend only on its own values,
//! in order. What depends on timing is only when a batch is done, so the writer decides
//! where row groups end from each batch's writer state as of that batch
//! ([`Lanes::settled`]), never from whatever the threads have reached.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn};
use parquet::errors::ParquetError;
use tokio::sync::Notify;

/// Work for one lane.
enum Job {
    Write(ArrowLeafColumn),
    /// Flush the last page and the dictionary; the lane's writer is consumed.
    Close,
}

/// What a job left behind. Moved once per job, so the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Done {
    Writer(ArrowColumnWriter),
    Chunk(ArrowColumnChunk),
}

/// One leaf column's writer and the jobs waiting for it.
struct Lane {
    /// `None` while a thread holds it, and after its close.
    writer: Option<ArrowColumnWriter>,
    /// Jobs in submission order, each with its batch's sequence number.
    queue: VecDeque<(u64, Job)>,
    /// The column's size in its last batch: costlier columns start first.
    cost: usize,
    chunk: Option<ArrowColumnChunk>,
}

/// One row group's lanes. A row group being closed and the next one being written are
/// two generations at once, so the close (last pages, dictionaries) overlaps the next
/// row group's first batches instead of stopping every thread but one.
struct Generation {
    id: u64,
    lanes: Vec<Lane>,
    /// Lanes whose close job has not finished; `None` until the close is queued.
    closing: Option<usize>,
}

impl Generation {
    fn closed(&self) -> bool {
        self.closing == Some(0)
    }
}

/// A submitted batch: how many lanes have still to encode it, and the sum of the
/// finished lanes' writer sizes just after encoding it.
struct Batch {
    seq: u64,
    left: usize,
    memory: usize,
}

struct State {
    /// Oldest first; the last one takes new batches.
    generations: VecDeque<Generation>,
    next_generation: u64,
    /// Batches not yet settled, oldest first.
    batches: VecDeque<Batch>,
    next_seq: u64,
    /// Batches before this one belong to closed row groups: nobody will settle them, so
    /// they are dropped once encoded.
    forget_below: u64,
    /// Threads wanted, and threads now running (waiting for a busy lane counts).
    threads: usize,
    running: usize,
    /// The first failure, until it is reported; then `failed` stays set.
    error: Option<ParquetError>,
    failed: bool,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Where threads are started from (submits may come from any runtime thread).
    runtime: tokio::runtime::Handle,
    /// Wakes threads when work is queued (or on stop).
    work: Condvar,
    /// Wakes the (single) async caller when a job finishes.
    done: Notify,
}

/// How long an encode thread waits for work before going back to the pool.
const IDLE: std::time::Duration = std::time::Duration::from_millis(50);

/// A job taken by a thread: where it came from, and what it needs.
struct Taken {
    generation: u64,
    lane: usize,
    seq: u64,
    job: Job,
    writer: ArrowColumnWriter,
}

/// The encode threads of one writer and the lanes of its open row groups.
///
/// Threads come from the runtime's blocking pool (reused, so the count of malloc arenas
/// stays fixed) when work is queued, and go back to it as soon as none is: a writer
/// waiting on its store holds no pool thread, so many concurrent executions cannot take
/// every pool thread and leave none for the store's own blocking writes.
pub(super) struct Lanes {
    shared: Arc<Shared>,
}

impl Lanes {
    /// Lanes encoded by up to `threads` threads (at least one). Must be called on a Tokio
    /// runtime.
    pub(super) fn start(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generations: VecDeque::new(),
                next_generation: 0,
                batches: VecDeque::new(),
                next_seq: 0,
                forget_below: 0,
                threads: threads.max(1),
                running: 0,
                error: None,
                failed: false,
                stop: false,
            }),
            runtime: tokio::runtime::Handle::current(),
            work: Condvar::new(),
            done: Notify::new(),
        });
        Lanes { shared }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// Wakes the waiting threads and starts the missing ones, after work was queued.
    fn wake(&self, mut st: MutexGuard<'_, State>) {
        let missing = st.threads.saturating_sub(st.running);
        st.running += missing;
        drop(st);
        self.shared.work.notify_all();
        for _ in 0..missing {
            let shared = Arc::clone(&self.shared);
            // The handle is not needed: a thread's failure is recorded in the state.
            drop(self.shared.runtime.spawn_blocking(move || work(&shared)));
        }
    }

    /// Starts a row group with `writers`, one per leaf column; later batches go to it.
    /// The previous row group must have been closed ([`Lanes::close`]), not necessarily
    /// finished closing.
    pub(super) fn install(&self, writers: Vec<ArrowColumnWriter>) -> Result<(), ParquetError> {
        let mut st = self.lock();
        st.check()?;
        if st.generations.back().is_some_and(|g| g.closing.is_none()) {
            return Err(ParquetError::General(
                "a row group was started before the previous one was closed".into(),
            ));
        }
        let id = st.next_generation;
        st.next_generation += 1;
        st.generations.push_back(Generation {
            id,
            lanes: writers
                .into_iter()
                .map(|w| Lane {
                    writer: Some(w),
                    queue: VecDeque::new(),
                    cost: 0,
                    chunk: None,
                })
                .collect(),
            closing: None,
        });
        Ok(())
    }

    /// Queues one batch for the open row group: its leaves in column order, each with a
    /// cost (its size). Returns the batch's sequence number for [`Lanes::settled`]; does
    /// not wait.
    pub(super) fn submit(
        &self,
        leaves: Vec<(usize, ArrowLeafColumn)>,
    ) -> Result<u64, ParquetError> {
        let mut st = self.lock();
        st.check()?;
        let seq = st.next_seq;
        let Some(generation) = st.generations.back_mut().filter(|g| g.closing.is_none()) else {
            return Err(ParquetError::General("no open row group".into()));
        };
        if leaves.len() != generation.lanes.len() {
            return Err(ParquetError::General(format!(
                "{} leaf columns for {} column writers",
                leaves.len(),
                generation.lanes.len()
            )));
        }
        let left = leaves.len();
        for (lane, (cost, leaf)) in generation.lanes.iter_mut().zip(leaves) {
            lane.cost = cost;
            lane.queue.push_back((seq, Job::Write(leaf)));
        }
        st.next_seq += 1;
        st.batches.push_back(Batch {
            seq,
            left,
            memory: 0,
        });
        self.wake(st);
        Ok(seq)
    }

    /// Waits until every batch up to `seq` is encoded; returns its row group's writers'
    /// total size (pages, dictionaries, buffered values) as it was right after batch `seq`,
    /// which does not depend on how far the threads have got since. Each batch is settled
    /// once, in order; an earlier or already settled `seq` returns `None`.
    pub(super) async fn settled(&self, seq: u64) -> Result<Option<usize>, ParquetError> {
        self.wait(|st| {
            while let Some(b) = st.batches.front() {
                if b.seq > seq {
                    return Some(None);
                }
                if b.left > 0 {
                    return None;
                }
                let b = st.batches.pop_front()?;
                if b.seq == seq {
                    return Some(Some(b.memory));
                }
            }
            Some(None)
        })
        .await
    }

    /// Closes the open row group: each lane's writer is closed (on the threads) after its
    /// queued batches. Returns at once, with the row group's id for [`Lanes::chunks`].
    pub(super) fn close(&self) -> Result<u64, ParquetError> {
        let mut st = self.lock();
        st.check()?;
        let seq = st.next_seq;
        let Some(generation) = st.generations.back_mut().filter(|g| g.closing.is_none()) else {
            return Err(ParquetError::General("no open row group".into()));
        };
        generation.closing = Some(generation.lanes.len());
        for lane in &mut generation.lanes {
            lane.queue.push_back((seq, Job::Close));
        }
        let id = generation.id;
        st.forget_below = seq;
        st.prune();
        self.wake(st);
        Ok(id)
    }

    /// The column chunks of closed row group `id`, in column order, once every lane has
    /// closed (`None` before). Row groups must be taken in the order they were closed.
    pub(super) fn try_chunks(
        &self,
        id: u64,
    ) -> Result<Option<Vec<ArrowColumnChunk>>, ParquetError> {
        let mut st = self.lock();
        st.check()?;
        st.take_chunks(id)
    }

    /// [`Lanes::try_chunks`], waiting for the close to finish.
    pub(super) async fn chunks(&self, id: u64) -> Result<Vec<ArrowColumnChunk>, ParquetError> {
        self.wait(|st| st.take_chunks(id).transpose()).await?
    }

    /// Polls `ready` under the lock each time a job finishes, until it gives a value or a
    /// job fails.
    async fn wait<T>(
        &self,
        mut ready: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, ParquetError> {
        loop {
            // Created before the check: a job finishing in between leaves a permit, so
            // the wake-up is not lost (there is one waiter, so `notify_one` suffices).
            let notified = self.shared.done.notified();
            {
                let mut st = self.lock();
                st.check()?;
                if let Some(value) = ready(&mut st) {
                    return Ok(value);
                }
            }
            notified.await;
        }
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        let mut st = self.lock();
        st.stop = true;
        st.generations.clear(); // drops queued leaves and idle writers now
        drop(st);
        self.shared.work.notify_all();
    }
}

impl State {
    /// The first failure (once), then a generic one: the writer stops at the first.
    fn check(&mut self) -> Result<(), ParquetError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.failed {
            return Err(ParquetError::General(
                "a column writer failed earlier".into(),
            ));
        }
        Ok(())
    }

    /// Drops encoded batches of closed row groups from the front.
    fn prune(&mut self) {
        while self
            .batches
            .front()
            .is_some_and(|b| b.left == 0 && b.seq < self.forget_below)
        {
            self.batches.pop_front();
        }
    }

    /// Work is queued somewhere (perhaps only behind a busy lane).
    fn has_work(&self) -> bool {
        self.generations
            .iter()
            .any(|g| g.lanes.iter().any(|l| !l.queue.is_empty()))
    }

    fn take_chunks(&mut self, id: u64) -> Result<Option<Vec<ArrowColumnChunk>>, ParquetError> {
        match self.generations.front() {
            Some(g) if g.id == id => {
                if !g.closed() {
                    return Ok(None);
                }
            }
            _ => {
                return Err(ParquetError::General(format!(
                    "row group {id} is not the oldest open one"
                )));
            }
        }
        let Some(g) = self.generations.pop_front() else {
            return Ok(None);
        };
        let chunks: Option<Vec<_>> = g.lanes.into_iter().map(|l| l.chunk).collect();
        chunks
            .map(Some)
            .ok_or_else(|| ParquetError::General("a column writer closed without a chunk".into()))
    }

    /// Takes the next job: the oldest batch first (a close counts as coming after its row
    /// group's batches), and in it the costliest column, so no thread is left with a long
    /// column at the end of a batch.
    fn pick(&mut self) -> Option<Taken> {
        let (g, lane, _, _) = self
            .generations
            .iter()
            .enumerate()
            .flat_map(|(g, generation)| {
                generation
                    .lanes
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.writer.is_some())
                    .filter_map(move |(i, l)| l.queue.front().map(|(seq, _)| (g, i, *seq, l.cost)))
            })
            .min_by_key(|&(_, _, seq, cost)| (seq, std::cmp::Reverse(cost)))?;
        let generation = &mut self.generations[g];
        let id = generation.id;
        let l = &mut generation.lanes[lane];
        let (seq, job) = l.queue.pop_front()?;
        let writer = l.writer.take()?;
        Some(Taken {
            generation: id,
            lane,
            seq,
            job,
            writer,
        })
    }

    /// Records a finished job. Returns whether the caller may be waiting for this (a
    /// batch or a close complete, or a failure) and whether the lane has more work: waking
    /// threads only then, not after every job, saves a context switch per column and batch.
    fn finish(
        &mut self,
        generation: u64,
        lane: usize,
        seq: u64,
        outcome: Result<Done, ParquetError>,
    ) -> (bool, bool) {
        if self.stop || self.failed {
            return (false, false);
        }
        let front = self.generations.front().map_or(generation, |g| g.id);
        let g = generation
            .checked_sub(front)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.generations.get_mut(i));
        let Some(g) = g else {
            return (false, false);
        };
        match outcome {
            Ok(Done::Writer(writer)) => {
                let memory = writer.memory_size();
                let mut more = false;
                if let Some(l) = g.lanes.get_mut(lane) {
                    l.writer = Some(writer);
                    more = !l.queue.is_empty();
                }
                let front = self.batches.front().map_or(seq, |b| b.seq);
                let index = seq.checked_sub(front).and_then(|i| usize::try_from(i).ok());
                let mut complete = false;
                if let Some(b) = index.and_then(|i| self.batches.get_mut(i)) {
                    b.left -= 1;
                    b.memory += memory;
                    complete = b.left == 0;
                }
                if complete {
                    self.prune();
                }
                (complete, more)
            }
            Ok(Done::Chunk(chunk)) => {
                if let Some(l) = g.lanes.get_mut(lane) {
                    l.chunk = Some(chunk);
                }
                g.closing = g.closing.map(|n| n.saturating_sub(1));
                (g.closed(), false)
            }
            Err(e) => {
                self.error = Some(e);
                self.failed = true;
                self.generations.clear();
                (true, false)
            }
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An encode thread: takes jobs until none has been queued for `IDLE` (or the lanes are
/// dropped), then goes back to the pool.
fn work(shared: &Shared) {
    let mut st = lock(shared);
    loop {
        if st.stop || st.failed {
            break;
        }
        let Some(taken) = st.pick() else {
            // Nothing to take: the work is behind a busy lane, or there is none. Batches
            // come every few milliseconds while an export streams, and staying on this
            // thread keeps the encoders' malloc arena (a thread per burst took a 2M-row
            // conversion from ~110 to ~120 MiB); a writer waiting on its store longer than
            // `IDLE` holds no pool thread.
            let (guard, wait) = shared
                .work
                .wait_timeout(st, IDLE)
                .unwrap_or_else(PoisonError::into_inner);
            st = guard;
            if wait.timed_out() && !st.has_work() {
                break;
            }
            continue;
        };
        drop(st);
        let Taken {
            generation,
            lane,
            seq,
            job,
            writer,
        } = taken;
        let outcome = catch_unwind(AssertUnwindSafe(|| run(job, writer)))
            .unwrap_or_else(|_| Err(ParquetError::General("a column encoder panicked".into())));
        st = lock(shared);
        let (progress, more) = st.finish(generation, lane, seq, outcome);
        if more {
            // This thread may take another lane's job; the other thread can take this one.
            shared.work.notify_one();
        }
        if progress {
            shared.done.notify_one();
        }
    }
    st.running = st.running.saturating_sub(1);
}

fn run(job: Job, mut writer: ArrowColumnWriter) -> Result<Done, ParquetError> {
    match job {
        Job::Write(leaf) => writer.write(&leaf).map(|()| Done::Writer(writer)),
        Job::Close => writer.close().map(Done::Chunk),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowSchemaConverter;
    use parquet::arrow::arrow_writer::{ArrowRowGroupWriterFactory, compute_leaves};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;

    use super::*;

    fn setup() -> (
        SerializedFileWriter<Vec<u8>>,
        ArrowRowGroupWriterFactory,
        Arc<Field>,
    ) {
        let field = Arc::new(Field::new("n", DataType::Int64, false));
        let schema = Arc::new(Schema::new(vec![Arc::clone(&field)]));
        let props = Arc::new(WriterProperties::default());
        let descr = ArrowSchemaConverter::new()
            .convert(&schema)
            .expect("schema");
        let file =
            SerializedFileWriter::new(Vec::new(), descr.root_schema_ptr(), props).expect("file");
        let factory = ArrowRowGroupWriterFactory::new(&file, schema);
        (file, factory, field)
    }

    /// Lanes on two threads with the first row group of `setup`'s file installed.
    fn started(factory: &ArrowRowGroupWriterFactory) -> Lanes {
        let lanes = Lanes::start(2);
        lanes
            .install(factory.create_column_writers(0).expect("writers"))
            .expect("install");
        lanes
    }

    fn leaf(field: &Field, from: i64) -> Vec<(usize, ArrowLeafColumn)> {
        let array: ArrayRef = Arc::new(Int64Array::from_iter_values(from..from + 1000));
        compute_leaves(field, &array)
            .expect("leaves")
            .into_iter()
            .map(|l| (1, l))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_settle_in_order_with_the_size_after_each_and_close_into_chunks() {
        let (_file, factory, field) = setup();
        let lanes = started(&factory);
        let seqs: Vec<u64> = (0..4)
            .map(|i| lanes.submit(leaf(&field, i * 1000)).expect("submit"))
            .collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
        // Values go into the writer's buffers, so its size grows batch by batch.
        let first = lanes
            .settled(0)
            .await
            .expect("settle")
            .expect("size of batch 0");
        let third = lanes
            .settled(2)
            .await
            .expect("settle")
            .expect("size of batch 2");
        assert!(first > 0 && third > first, "sizes {first} then {third}");
        assert_eq!(
            lanes.settled(1).await.expect("settle"),
            None,
            "already settled"
        );
        let err = lanes
            .install(factory.create_column_writers(1).expect("writers"))
            .expect_err("the first row group is open");
        assert!(
            err.to_string()
                .contains("before the previous one was closed"),
            "{err}"
        );
        let first_group = lanes.close().expect("close");
        // The next row group starts while the first one closes.
        lanes
            .install(factory.create_column_writers(1).expect("writers"))
            .expect("second row group");
        let second = lanes.submit(leaf(&field, 4000)).expect("submit");
        let chunks = lanes.chunks(first_group).await.expect("chunks");
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].close().metadata.num_values(), 4000);
        let size = lanes.settled(second).await.expect("settle").expect("size");
        assert!(
            size < third,
            "the second row group's size is its own: {size} vs {third}"
        );
        let second_group = lanes.close().expect("close");
        let chunks = lanes.chunks(second_group).await.expect("chunks");
        assert_eq!(chunks[0].close().metadata.num_values(), 1000);
        lanes
            .install(factory.create_column_writers(2).expect("writers"))
            .expect("third row group");
        let wrong = lanes.submit(Vec::new()).expect_err("one leaf per writer");
        assert!(
            wrong
                .to_string()
                .contains("0 leaf columns for 1 column writers"),
            "{wrong}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_column_fails_the_waiter_and_everything_after() {
        let (_file, factory, field) = setup();
        let lanes = started(&factory);
        lanes.submit(leaf(&field, 0)).expect("submit");
        // Text handed to the Int64 column's writer: the encoder fails, on a pool thread.
        let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["x"]));
        let bad = compute_leaves(&Field::new("n", DataType::Utf8, false), &text)
            .expect("leaves")
            .into_iter()
            .map(|l| (1, l))
            .collect();
        let bad = lanes.submit(bad).expect("queued before it fails");
        // The next wait reports the failure, whichever batch it waits for.
        let err = lanes.settled(bad).await.expect_err("the encoder failed");
        assert!(
            err.to_string().contains("Cannot coerce Utf8 to I64"),
            "{err}"
        );
        let later = lanes.submit(leaf(&field, 1000)).expect_err("stopped");
        assert!(later.to_string().contains("failed earlier"), "{later}");
        assert!(lanes.close().is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_lanes_hold_no_pool_thread_and_closed_batches_are_forgotten() {
        let (_file, factory, field) = setup();
        let lanes = started(&factory);
        // Two batches never settled (a row group that closed by its row count).
        lanes.submit(leaf(&field, 0)).expect("submit");
        lanes.submit(leaf(&field, 1000)).expect("submit");
        let id = lanes.close().expect("close");
        lanes.chunks(id).await.expect("chunks");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (running, batches) = {
                let st = lanes.lock();
                (st.running, st.batches.len())
            };
            if running == 0 && batches == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{running} threads still held, {batches} batches kept with nothing queued"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Work queued later starts threads again.
        lanes
            .install(factory.create_column_writers(1).expect("writers"))
            .expect("install");
        let seq = lanes.submit(leaf(&field, 2000)).expect("submit");
        let size = lanes.settled(seq).await.expect("settle");
        assert!(size.is_some_and(|s| s > 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_with_work_queued_lets_the_threads_go() {
        let (_file, factory, field) = setup();
        let lanes = started(&factory);
        for i in 0..50 {
            lanes.submit(leaf(&field, i * 1000)).expect("submit");
        }
        let shared = Arc::downgrade(&lanes.shared);
        drop(lanes);
        // Each thread holds the shared state until it has seen the stop.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while shared.strong_count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "encode threads still running"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
