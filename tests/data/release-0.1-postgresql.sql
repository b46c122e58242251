--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: accounts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.accounts (
    id character varying(32) NOT NULL,
    key_hash character varying(64) NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: job_callbacks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.job_callbacks (
    job_id character varying(40) NOT NULL,
    url text NOT NULL,
    status character varying(16) NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamp with time zone NOT NULL,
    last_error text,
    delivered_at timestamp with time zone
);


--
-- Name: jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.jobs (
    id character varying(40) NOT NULL,
    account_id character varying(32) NOT NULL,
    client_request_key character varying(64),
    status character varying(16) NOT NULL,
    options json NOT NULL,
    submitted_on date NOT NULL,
    base_url text NOT NULL,
    callback_url text,
    request_id character varying(128) NOT NULL,
    attempts integer NOT NULL,
    result json,
    error_code character varying(32),
    error_detail text,
    created_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    expires_at timestamp with time zone
);


--
-- Name: profiles; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.profiles (
    id character varying(40) NOT NULL,
    account_id character varying(32) NOT NULL,
    tag character varying(128),
    training_tier character varying(16) NOT NULL,
    status character varying(16) NOT NULL,
    message text,
    reference_count integer NOT NULL,
    attempts integer NOT NULL,
    embeddings bytea,
    picture bytea,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: webhook_secrets; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhook_secrets (
    account_id character varying(32) NOT NULL,
    secret character varying(128) NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Data for Name: accounts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.accounts VALUES ('acct_6ee35c64a3954fe0b352', 'c229f0396bdf0e506246f140ff2ef8d2971acb7be0684441d1615b41f945139f', '2026-11-30 11:48:28.849005+00');
INSERT INTO public.accounts VALUES ('acct_bb4e37e8a568737be83b', '9dc0cae6cdc62f1cbbffba0a1d8f0936d9648a213402e4cbf9230e5144464e10', '2026-11-30 11:48:28.849005+00');


--
-- Data for Name: job_callbacks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.job_callbacks VALUES ('job_00000000000000000000000000000001', 'https://example.com/hook', 'PENDING', 0, '2026-06-01 12:00:00+00', NULL, NULL);


--
-- Data for Name: jobs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.jobs VALUES ('job_00000000000000000000000000000001', 'acct_6ee35c64a3954fe0b352', '0bf4a87902ec1d56f204ee2debfa6be396674c78ae7ebeefb6a7c4476bd2390c', 'SUCCEEDED', '{"num_output_images": 1, "response_mode": "urls"}', '2026-06-01', 'http://testserver/', 'https://example.com/hook', 'req-1', 1, '{"known_subjects": {"counts": {}}, "download_urls": []}', NULL, NULL, '2026-06-01 12:00:01+00', '2026-06-01 12:00:00+00', '2026-06-01 12:00:00+00', '2026-06-02 12:00:00+00');
INSERT INTO public.jobs VALUES ('job_00000000000000000000000000000002', 'acct_6ee35c64a3954fe0b352', 'ec7d16851c6b7994394ff0e681e025de544ce8974ff7631b3a7ea8cb7e12d666', 'QUEUED', '{"num_output_images": 1, "response_mode": "urls"}', '2026-06-01', 'http://testserver/', 'https://example.com/hook', 'req-2', 0, NULL, NULL, NULL, '2026-06-01 12:00:02+00', NULL, NULL, NULL);
INSERT INTO public.jobs VALUES ('job_00000000000000000000000000000003', 'acct_6ee35c64a3954fe0b352', NULL, 'RUNNING', '{"num_output_images": 1, "response_mode": "urls"}', '2026-06-01', 'http://testserver/', 'https://example.com/hook', 'req-3', 1, NULL, NULL, NULL, '2026-06-01 12:00:03+00', '2026-06-01 12:00:00+00', NULL, NULL);


--
-- Data for Name: profiles; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.profiles VALUES ('prof_0af2ecb1856257e8c350a34d', 'acct_6ee35c64a3954fe0b352', 'release', 'fast', 'READY', NULL, 5, 1, '\x6cbf003e7f4607bebdf2233fdfd5d63da12109bffd22b93e79e9a63fe673723ffe2734bf55f9a1bfea8e1fbf6e45293d4ecd14c0ec0a60be037a9fbfe0753bbf8f540bbf18f2a1be3dc1d23e1471853f979e03be46e8ae3f334a2abf21f9b33ed249673f8589c03df8553ebf32f66bbf0a5beabed57a613e2b3b81bf1f3256bee20b23bedb740a3f9acf5b3e69f3b53e506127bf70b904be9eb2483fc028bf3f0f29a1bf41c8c13fa545ac3f0604483fba66873e7ebaa0be6ca0ba3fbfe9fa3ff99be63f5255a83f91fab63e2faa9abffaf391bbbe0e283f07e9a4bf704dca3e1817dc3edb2f323f2d9197bf576529bf7174dfbe12bc95bf9ba3de3f03e8fdbeb56ea83e9f6384be3dafca3f9701a93f6623223f4e060dc0551c553d0f062f3fd081803f282f1ebfab37e93fe203a9bfe75929bf705f6f3f7eed483d332700402d0b413e021922bf0150c1beadaa8bbf068ba3bfa662213f48c7143f1ab4a53fd82d41bfac34d83f7b2493be3686c93f1b96ddbea2483cbfbdc77f3ea806843fb2df243e38e515bf16adabbf0465b3bfd3af003fd55d7d3fd73c28beca8489bfb17f5f3ff3e3a3bfa18b36bf07fb1e3f500210c03cd2c53e6ae614bf09cedf3d67099bbd13f74e3e41b5313f852442bfbde2b53f48e1393fddfe573f431a953f629f493f8a15583fd3d09a3d87a0b6bf43490abee9fe44bf671cb6bfed53843e758c11bfa2d083bf0f8185bff76d893edaa3b73e4946a93f5afa63bc015b853f6a7db33fa138933f246117c082459d3face2ad3e8ff8d83e8511be3ebff8c33e438aa33e7cc3b7bec968f3bfaf0edfbd5fc14dbfcb428a3f34d993be21f5aa3dc77f59bf27b802bf2bf53cbcc620bebf66f3993e693cd9bdabc597bfa67c19c06257033fef5c98bea2ae07bf85d271be4982e83f1afc4bbd7165b13d6758bebf02dcd23f7ee06a3f5291883f7b44433de3a96a3fbeecbd3ef6f91c3f79d81bbe5ca8bcbf80b1833fc2acf7bff5b175be586e51be717c85bfa3f51c3f3b234dbe35addfbe5914053f2b02f4be19cab13febf1b33ec6dbf2beadddf8bf7564a7bf451d8b3f35464fbdc5f590be1256d23fda2da4bfabed15bf03f7f1be331a163f71dd29bff4081dbf8975cdbfa4b63a3f265f4e3fa7e7f3be9642273e6e75a5bf7e91f1beb260b03ffffc0a3effdc1340778549bf858d143fae3248be70d9103f454decbbaeaa0fbf221c5ebff239444016679ebdf81001c0b00a26bf03942d3f8d0000bf1a23ae3f964e803fa9fe1bbe4ac6f1be529d80bf023133bff48fbcbfa8299a3f159ccb3f22c9a0bf634197bf995ee2bf27bf76bf39ce46c0323692bf5301a63ffdfbb0be08c65a3f275afabe8c5de13fcdff4b3ece95c3beea5a23402d21a6be0c519cbf7fc14e3e7d111fbd537d883f33f06bbfee014e3fb94d5a3f', '\xffd86a706567', '2026-06-01 12:00:00+00', '2026-06-01 12:00:00+00');
INSERT INTO public.profiles VALUES ('prof_7eddb7ba0aca485191c21ca3', 'acct_6ee35c64a3954fe0b352', NULL, 'fast', 'VALIDATING', NULL, 5, 0, NULL, NULL, '2026-06-01 12:00:00+00', '2026-06-01 12:00:00+00');


--
-- Data for Name: webhook_secrets; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.webhook_secrets VALUES ('acct_6ee35c64a3954fe0b352', 'whsec_Z9GcSN9Ua2FxHOjeNlxlbnsx9ZQSI4VDvLo-hQs0tp0', '2026-11-30 11:48:28.94801+00');


--
-- Name: accounts accounts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (id);


--
-- Name: job_callbacks job_callbacks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_callbacks
    ADD CONSTRAINT job_callbacks_pkey PRIMARY KEY (job_id);


--
-- Name: jobs jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);


--
-- Name: profiles profiles_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.profiles
    ADD CONSTRAINT profiles_pkey PRIMARY KEY (id);


--
-- Name: jobs uq_jobs_account_client_request; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT uq_jobs_account_client_request UNIQUE (account_id, client_request_key);


--
-- Name: webhook_secrets webhook_secrets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_secrets
    ADD CONSTRAINT webhook_secrets_pkey PRIMARY KEY (account_id);


--
-- Name: ix_accounts_key_hash; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX ix_accounts_key_hash ON public.accounts USING btree (key_hash);


--
-- Name: ix_job_callbacks_next_attempt_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_job_callbacks_next_attempt_at ON public.job_callbacks USING btree (next_attempt_at);


--
-- Name: ix_job_callbacks_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_job_callbacks_status ON public.job_callbacks USING btree (status);


--
-- Name: ix_jobs_account_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_jobs_account_id ON public.jobs USING btree (account_id);


--
-- Name: ix_jobs_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_jobs_created_at ON public.jobs USING btree (created_at);


--
-- Name: ix_jobs_expires_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_jobs_expires_at ON public.jobs USING btree (expires_at);


--
-- Name: ix_jobs_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_jobs_status ON public.jobs USING btree (status);


--
-- Name: ix_profiles_account_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_profiles_account_id ON public.profiles USING btree (account_id);


--
-- Name: ix_profiles_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_profiles_created_at ON public.profiles USING btree (created_at);


--
-- Name: ix_profiles_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_profiles_status ON public.profiles USING btree (status);


--
-- Name: ix_profiles_tag; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_profiles_tag ON public.profiles USING btree (tag);


--
-- Name: job_callbacks job_callbacks_job_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_callbacks
    ADD CONSTRAINT job_callbacks_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.jobs(id) ON DELETE CASCADE;


--
-- Name: jobs jobs_account_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);


--
-- Name: profiles profiles_account_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.profiles
    ADD CONSTRAINT profiles_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);


--
-- Name: webhook_secrets webhook_secrets_account_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_secrets
    ADD CONSTRAINT webhook_secrets_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);


--
-- PostgreSQL database dump complete
--


