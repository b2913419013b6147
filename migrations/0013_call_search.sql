-- ListCalls orders by cost or latency as well as time (issue 16, "call search").
--
-- Each index returns a tenant's calls in one search order (key DESC, occurred_at DESC, call_id: the
-- order store/call_search.py pages through), so "the dearest calls over $0.10 in the last 7 days"
-- reads the top of calls_by_cost in the partitions of those 7 days and stops after a page, instead of
-- sorting every call of the range. The latency index leaves out calls recorded without a latency,
-- which a latency search never lists. Each costs every RecordCall one more index entry.
CREATE INDEX calls_by_cost ON calls (tenant_id, cost_nanos DESC, occurred_at DESC, call_id);
CREATE INDEX calls_by_latency ON calls (tenant_id, latency_us DESC, occurred_at DESC, call_id)
    WHERE latency_us IS NOT NULL;
