-- 0005: a merchant's route switch in progress. A switch sets switching before it moves any
-- data and clears it with the new route, so a switch that failed or whose process died leaves
-- the merchant refused by every allotd (503) until a PUT of the route runs it again.
ALTER TABLE merchant_routes ADD COLUMN IF NOT EXISTS switching BOOLEAN NOT NULL DEFAULT FALSE;
