-- 0008: compensation tasks by merchant. A route switch to MySQL applies the merchant's own
-- tasks, and only those (the backlog of every other merchant is the worker's), and counts
-- what is left; the index lets it read and lock just that merchant's pending tasks.
ALTER TABLE compensation_tasks ADD INDEX IF NOT EXISTS compensation_tasks_by_merchant
  (dept_no, state, next_attempt_at);
