// River (github.com/riverqueue/river, pgx v5 driver) on the same PostgreSQL, with the protocol
// `slipway bench jobs` uses for its own engine: drain a backlog of JOBS no-op jobs with
// CONCURRENCY workers (throughput), then enqueue LATENCY_JOBS jobs one at a time to idle workers
// (enqueue → start latency). Prints one JSON line.
//
// River's fetch defaults are kept unless FETCH_COOLDOWN_MS is set: FetchCooldown 100ms,
// FetchPollInterval 1s. Inserts wake the queue through LISTEN/NOTIFY, at most one notification per
// queue per FetchCooldown; a fetch takes at most MaxWorkers jobs and fetches are at most one per
// FetchCooldown, so with the default the drain is capped near CONCURRENCY / 100ms.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
	jobs      int64
	drained   atomic.Int64
	allDone   chan time.Time
	measuring atomic.Bool
	started   chan float64
}

func (w *noopWorker) Work(_ context.Context, job *river.Job[noopArgs]) error {
	if w.measuring.Load() {
		w.started <- float64(time.Since(job.CreatedAt)) / float64(time.Millisecond)
	} else if w.drained.Add(1) == w.jobs {
		w.allDone <- time.Now()
	}
	return nil
}

func envInt(name string, def int) (int, error) {
	s, ok := os.LookupEnv(name)
	if !ok || s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s must be a positive integer, got %q", name, s)
	}
	return n, nil
}

func run(ctx context.Context) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return fmt.Errorf("DATABASE_URL is not set")
	}
	jobs, err := envInt("JOBS", 5000)
	if err != nil {
		return err
	}
	concurrency, err := envInt("CONCURRENCY", 16)
	if err != nil {
		return err
	}
	latencyJobs, err := envInt("LATENCY_JOBS", 200)
	if err != nil {
		return err
	}

	cooldownMs, err := envInt("FETCH_COOLDOWN_MS", 0)
	if err != nil {
		return err
	}

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("migrator: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	worker := &noopWorker{jobs: int64(jobs), allDone: make(chan time.Time, 1), started: make(chan float64, 1)}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, worker); err != nil {
		return err
	}
	config := &river.Config{
		Logger:  logger,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: concurrency}},
		Workers: workers,
	}
	if cooldownMs > 0 {
		config.FetchCooldown = time.Duration(cooldownMs) * time.Millisecond
	}
	client, err := river.NewClient(driver, config)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}

	params := make([]river.InsertManyParams, jobs)
	for i := range params {
		params[i] = river.InsertManyParams{Args: noopArgs{}}
	}
	if _, err := client.InsertManyFast(ctx, params); err != nil {
		return fmt.Errorf("insert backlog: %w", err)
	}
	// Settled like every engine's backlog (see SETTLE in server/bench/jobs.rs).
	for _, statement := range []string{"VACUUM (ANALYZE)", "CHECKPOINT"} {
		if _, err := pool.Exec(ctx, statement); err != nil {
			return fmt.Errorf("settle (%s): %w", statement, err)
		}
	}

	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	var seconds float64
	select {
	case end := <-worker.allDone:
		seconds = end.Sub(start).Seconds()
	case <-ctx.Done():
		return ctx.Err()
	}

	worker.measuring.Store(true)
	latencies := make([]float64, 0, latencyJobs)
	for range latencyJobs {
		if _, err := client.Insert(ctx, noopArgs{}, nil); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		select {
		case ms := <-worker.started:
			latencies = append(latencies, ms)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := client.Stop(ctx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}

	sort.Float64s(latencies)
	pick := func(q float64) float64 {
		return latencies[min(len(latencies)-1, int(math.Floor(q*float64(len(latencies)))))]
	}
	line, err := json.Marshal(map[string]float64{
		"jobs_per_second": float64(jobs) / seconds,
		"p50_ms":          pick(0.5),
		"p99_ms":          pick(0.99),
	})
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	return nil
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "river bench:", err)
		os.Exit(1)
	}
}
