-- Redeliveries of one work-queue message, counted by the worker where the broker does
-- not count them (classic queues have no x-delivery-limit): a message that keeps
-- crashing the worker is dead-lettered past the limit instead of looping forever.
-- One row per message that was redelivered; removed once the message is settled.
CREATE TABLE queue_redeliveries (
    message_key text PRIMARY KEY,
    deliveries integer NOT NULL,
    last_delivered_at timestamptz NOT NULL DEFAULT now()
);
