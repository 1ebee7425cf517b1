// Package cdr writes call detail records: one per call, from the
// dialog.CallRecord the B2BUA hands its recorder.
//
// A record is a line of CSV in the column order of Asterisk's cdr_csv
// (accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp,
// lastdata, start, answer, end, duration, billsec, disposition, amaflags,
// uniqueid, userfield), quoted as cdr_csv quotes (text in double quotes,
// numbers bare, an empty answer time for a call never answered), followed
// by parley's own columns (codec, packets, loss, jitter, end reason,
// node), so that tools reading Asterisk's columns keep working (csv.go).
//
// The Writer (writer.go) never blocks the call that ends: each sink, the
// file (file.go, reopened on request for log rotation) and the Redis
// stream shared by a cluster (redis.go), has a bounded queue drained by a
// goroutine of its own; a full queue drops the record and a failed write
// loses it, and both are logged and counted. Recent reads the newest
// records back, from the stream or the file's tail (recent.go).
//
// It owns no call state and imports dialog only for CallRecord and
// MediaQuality.
package cdr
