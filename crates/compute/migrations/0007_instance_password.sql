-- The password a guest posted to the metadata service (Nova keeps it in the instance's
-- system metadata as password_0..3), shown and cleared through os-server-password.
ALTER TABLE nv_instances ADD COLUMN password {text}
