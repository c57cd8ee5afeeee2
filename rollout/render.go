package rollout

// Renderer turns a release's recorded facts into the texts people read: the
// war-room table and the evidence files. It only formats; every number it
// shows comes from the Release.
type Renderer interface {
	// TableHeader is the war-room table's header line.
	TableHeader(p *Plan) string
	// TableRow is one line of the war-room table.
	TableRow(p *Plan, row Row) string
	// StageReport is rollout_stage_<weight>.txt for the 0-based stage index:
	// every row of the stage and how it ended.
	StageReport(p *Plan, r *Release, stage int) []byte
	// StageSummary is summary_stage_<weight>.txt: per signal min/mean/max,
	// verdict counts, holds, the decision.
	StageSummary(p *Plan, r *Release, stage int) []byte
	// RollbackReport is rollback_<timestamp>.txt.
	RollbackReport(p *Plan, r *Release) []byte
	// Baseline is baseline_<version>.prom: the last stage-100 readings in
	// Prometheus text format, the reference for first-night diffs.
	Baseline(p *Plan, r *Release) []byte
	// NightSnapshot is one first-night snapshot with its diff against the
	// baseline.
	NightSnapshot(p *Plan, r *Release, row Row) []byte
	// OneLiner is the release note one-liner.
	OneLiner(p *Plan, r *Release) string
	// RCA is mini_rca_<version>.md, pre-filled with the release's facts.
	RCA(p *Plan, r *Release) []byte
	// WarRoomLog is warroom_log.txt: every command, refusal and decision.
	WarRoomLog(r *Release) []byte
}
