package cdr

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TimeLayout is how cdr_csv writes times: local time, to the second
// (strftime's "%Y-%m-%d %T").
const TimeLayout = "2006-01-02 15:04:05"

// Columns names the columns of a record, in order: Asterisk's eighteen,
// then parley's six.
var Columns = []string{
	"accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
	"start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
	"codec", "packets", "loss", "jitter", "reason", "node",
}

// AppendCSV appends r as one line of CSV, newline included, as cdr_csv
// writes it: text in double quotes (a quote inside doubled), numbers bare,
// times quoted in local time, and a time not set (a call never answered)
// as an empty field without quotes. Control characters in text become
// spaces, so a record is always one line.
func (r Record) AppendCSV(b []byte) []byte {
	for _, s := range []string{r.AccountCode, r.Src, r.Dst, r.DContext, r.CLID, r.Channel, r.DstChannel, r.LastApp, r.LastData} {
		b = appendText(b, s)
	}
	for _, t := range []time.Time{r.Start, r.Answer, r.End} {
		b = appendTime(b, t)
	}
	b = strconv.AppendInt(b, int64(r.Duration), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.BillSec), 10)
	b = append(b, ',')
	for _, s := range []string{r.Disposition, r.AMAFlags, r.UniqueID, r.UserField, r.Codec} {
		b = appendText(b, s)
	}
	b = strconv.AppendUint(b, r.Packets, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, r.Loss, 10)
	b = append(b, ',')
	b = strconv.AppendFloat(b, r.Jitter, 'f', 3, 64)
	b = append(b, ',')
	b = appendText(b, r.Reason)
	b = appendText(b, r.Node)
	b[len(b)-1] = '\n' // the last comma
	return b
}

func appendText(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, strings.ReplaceAll(clean(s), `"`, `""`)...)
	return append(b, '"', ',')
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, ',')
	}
	b = append(b, '"')
	b = t.Local().AppendFormat(b, TimeLayout)
	return append(b, '"', ',')
}

// ErrColumns is returned by ParseCSV for a line with too few columns.
var ErrColumns = errors.New("cdr: too few columns")

// ParseCSV reads a line AppendCSV wrote (its newline optional). A line
// with only Asterisk's eighteen columns (or sixteen, without uniqueid and
// userfield) is read too, leaving parley's columns empty.
func ParseCSV(line []byte) (Record, error) {
	cr := csv.NewReader(bytes.NewReader(line))
	cr.FieldsPerRecord = -1
	f, err := cr.Read()
	if err != nil {
		return Record{}, fmt.Errorf("cdr: %w", err)
	}
	if len(f) < 16 {
		return Record{}, fmt.Errorf("%w: %d", ErrColumns, len(f))
	}
	for len(f) < len(Columns) {
		f = append(f, "")
	}
	r := Record{
		AccountCode: f[0], Src: f[1], Dst: f[2], DContext: f[3], CLID: f[4], Channel: f[5], DstChannel: f[6],
		LastApp: f[7], LastData: f[8], Disposition: f[14], AMAFlags: f[15], UniqueID: f[16], UserField: f[17],
		Codec: f[18], Reason: f[22], Node: f[23],
	}
	var errs []error
	num := func(col int, s string, into func(string) error) {
		if s == "" {
			return
		}
		if err := into(s); err != nil {
			errs = append(errs, fmt.Errorf("cdr: column %s: %w", Columns[col], err))
		}
	}
	for i, t := range []*time.Time{&r.Start, &r.Answer, &r.End} {
		num(9+i, f[9+i], func(s string) (err error) { *t, err = time.ParseInLocation(TimeLayout, s, time.Local); return })
	}
	num(12, f[12], func(s string) (err error) { r.Duration, err = strconv.Atoi(s); return })
	num(13, f[13], func(s string) (err error) { r.BillSec, err = strconv.Atoi(s); return })
	num(19, f[19], func(s string) (err error) { r.Packets, err = strconv.ParseUint(s, 10, 64); return })
	num(20, f[20], func(s string) (err error) { r.Loss, err = strconv.ParseUint(s, 10, 64); return })
	num(21, f[21], func(s string) (err error) { r.Jitter, err = strconv.ParseFloat(s, 64); return })
	return r, errors.Join(errs...)
}
