package dags

import (
	"testing"
	"time"
)

func TestDescribe(t *testing.T) {
	ams, _ := time.LoadLocation("Europe/Amsterdam")
	cron := func(expr string, loc *time.Location) Timetable {
		c, err := NewCronTimetable(expr, loc)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		tt   Timetable
		want string
	}{
		{NullTimetable{}, "Never, only when triggered"},
		{OnceTimetable{}, "Once, at the start date"},
		{DeltaTimetable{Delta: 90 * time.Minute}, "Every 1 hour 30 minutes"},
		{cron("@daily", time.UTC), "At 00:00"},
		{cron("0 3 * * *", time.UTC), "At 03:00"},
		{cron("*/5 * * * *", time.UTC), "Every 5 minutes"},
		{cron("15 * * * *", time.UTC), "At minute 15 past every hour"},
		{cron("30 6 * * 1-5", ams), "At 06:30, Monday through Friday (Europe/Amsterdam)"},
		{cron("0 6,18 * * MON,THU", time.UTC), "At 06:00 and 18:00, only on Monday and Thursday"},
		{cron("0 0 1,15 * *", time.UTC), "At 00:00, on day 1 and 15 of the month"},
		{cron("0 0 1 1,7 *", time.UTC), "At 00:00, on day 1 of the month, only in January and July"},
		{cron("0 9 * * MON#1", time.UTC), "0 9 * * MON#1"},
		{cron("5-10 * * * *", time.UTC), "5-10 * * * *"},
	} {
		if got := Describe(c.tt); got != c.want {
			t.Errorf("Describe(%s) = %q, want %q", c.tt.Summary(), got, c.want)
		}
	}
}
