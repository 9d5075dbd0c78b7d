-- Hand-written DuckDB baseline for benchmarks/compute.py: the 52 computed tags of the
-- medical_aesthetics template pack (fixtures/templates/medical_aesthetics.yaml), written
-- by hand as plain SQL over the same frames that tagportal.engine.evaluate reads.
--
-- Inputs (pandas frames registered by compute.py):
--   profiles(oneid, gender, age, city, member_level, points, registered_days,
--            source_channel, skin_type, wecom_added)
--   events(oneid, time, type, channel, value, "properties.project",
--          "properties.project_type", "properties.concern", row_no)
--   orders(oneid, time, amount, channel, category, discount, "properties.campaign", row_no)
--   variable today: as_of's Beijing date (SET VARIABLE today = DATE '...').
-- ``row_no`` is the row's position in its frame (ties of "most frequent" go to the value
-- seen last: latest time, then latest row, as in the engine).
--
-- Output: the last statement is the query of the tags: one row per person (the union
-- of the OneIDs of the three frames), one column per tag, plus "<tag>__bucket" for
-- number tags with declared buckets. The statements before it build the shared
-- aggregations as temporary tables.
--
-- The engine's semantics, spelled out here:
--   * days are Beijing calendar days; "last N days" is today - N + 1 .. today;
--     rows dated after today (or without a time) are ignored everywhere;
--   * count and sum are 0 without rows, avg / max / days_since are NULL;
--   * a comparison on a missing value is false (hence the coalesce(..., false)),
--     whatever the operator; "not" is plain negation of that;
--   * an empty text counts as missing for is_set; unmapped values give NULL;
--   * profiles hold one row per OneID (the engine would keep the last of repeated rows;
--     the generated data has none).
-- Statements are separated by a line holding only ";" (the last one has none).

CREATE OR REPLACE TEMP MACRO last_days(d, n) AS d > getvariable('today') - n
;

-- usable rows, with their Beijing day ------------------------------------------
CREATE OR REPLACE TEMP TABLE ev AS
SELECT *
FROM (
    SELECT oneid, type, channel, value,
           "properties.project" AS project,
           "properties.project_type" AS project_type,
           "properties.concern" AS concern,
           time, row_no,
           (time AT TIME ZONE 'Asia/Shanghai')::DATE AS d
    FROM events
    WHERE oneid IS NOT NULL AND time IS NOT NULL
)
WHERE d <= getvariable('today')
;

CREATE OR REPLACE TEMP TABLE od AS
SELECT *
FROM (
    SELECT oneid, amount, channel, category, discount,
           "properties.campaign" AS campaign,
           time, row_no,
           (time AT TIME ZONE 'Asia/Shanghai')::DATE AS d
    FROM orders
    WHERE oneid IS NOT NULL AND time IS NOT NULL
)
WHERE d <= getvariable('today')
;

-- per-person aggregations ----------------------------------------------------
CREATE OR REPLACE TEMP TABLE ev_metrics AS
SELECT
    oneid,
    count(*) FILTER (type = 'store_visit' AND last_days(d, 1)) AS visits_1d,
    count(*) FILTER (type = 'store_visit' AND last_days(d, 7)) AS visits_7d,
    count(*) FILTER (type = 'store_visit' AND last_days(d, 90)) AS visits_90d,
    count(*) FILTER (type = 'store_visit' AND last_days(d, 365)) AS visits_365d,
    max(d) FILTER (type = 'store_visit') AS last_visit_d,
    count(*) FILTER (type = 'treatment' AND last_days(d, 7)) AS treatments_7d,
    count(*) FILTER (type = 'treatment' AND last_days(d, 365)) AS treatments_365d,
    max(d) FILTER (type = 'treatment') AS last_treatment_d,
    count(*) FILTER (type = 'treatment' AND project_type = '光电' AND last_days(d, 365)) AS photoelectric_365d,
    count(*) FILTER (type = 'treatment' AND project_type = '注射' AND last_days(d, 365)) AS injection_365d,
    count(*) FILTER (type = 'treatment' AND project_type = '皮肤管理' AND last_days(d, 180)) AS skin_mgmt_180d,
    count(*) FILTER (
        type = 'treatment' AND project IN ('热玛吉', '超声炮', '热拉提', '黄金微针', 'Fotona4D') AND last_days(d, 365)
    ) AS anti_aging_365d,
    max(d) FILTER (type = 'treatment' AND project IN ('肉毒素', '瘦脸针', '除皱针', '瘦肩针')) AS last_botox_d,
    max(d) FILTER (type = 'treatment' AND project IN ('玻尿酸', '玻尿酸填充')) AS last_filler_d,
    count(*) FILTER (type = 'follow_up' AND last_days(d, 7)) AS follow_ups_7d,
    avg(value) FILTER (type = 'follow_up' AND value > 0 AND last_days(d, 180)) AS satisfaction_180d,
    count(*) FILTER (type = 'consultation' AND last_days(d, 30)) AS consultations_30d,
    count(*) FILTER (type = 'consultation' AND last_days(d, 90)) AS consultations_90d,
    count(*) FILTER (type = 'appointment' AND last_days(d, 7)) AS appointments_7d,
    count(*) FILTER (type = 'appointment' AND last_days(d, 90)) AS appointments_90d,
    count(*) FILTER (type IN ('consultation', 'appointment') AND last_days(d, 30)) AS consult_appt_30d,
    count(*) FILTER (
        channel = 'miniprogram' AND type IN ('page_view', 'product_view', 'search') AND last_days(d, 30)
    ) AS mp_views_30d,
    count(*) FILTER (
        type IN ('content_view', 'content_like', 'content_share')
        AND channel IN ('xiaohongshu', 'douyin', 'wechat_channels') AND last_days(d, 30)
    ) AS content_30d,
    count(*) FILTER (type IN ('product_view', 'add_to_cart') AND last_days(d, 30)) AS views_carts_30d,
    count(*) FILTER (type = 'coupon_used' AND last_days(d, 180)) AS coupons_used_180d,
    count(*) FILTER (type = 'coupon_received' AND last_days(d, 180)) AS coupons_received_180d,
    count(*) FILTER (type = 'wecom_chat' AND last_days(d, 30)) AS wecom_chats_30d,
    count(*) FILTER (type = 'wecom_delete' AND last_days(d, 90)) AS wecom_deletes_90d,
    count(*) FILTER (
        type IN ('store_visit', 'consultation', 'appointment', 'wecom_chat') AND last_days(d, 60)
    ) AS touches_60d,
    count(*) FILTER (
        type IN ('store_visit', 'consultation', 'page_view', 'product_view', 'wecom_chat') AND last_days(d, 90)
    ) AS engaged_90d,
    count(*) FILTER (type = 'complaint' AND last_days(d, 90)) AS complaints_90d,
    count(*) FILTER (type = 'complaint' AND last_days(d, 365)) AS complaints_365d,
    count(*) FILTER (type = 'refund' AND last_days(d, 180)) AS refunds_180d
FROM ev
GROUP BY oneid
;

CREATE OR REPLACE TEMP TABLE od_metrics AS
SELECT
    oneid,
    count(*) AS orders_all,
    max(d) AS last_order_d,
    count(*) FILTER (last_days(d, 30)) AS orders_30d,
    count(*) FILTER (last_days(d, 365)) AS orders_365d,
    sum(amount) FILTER (last_days(d, 365)) AS spend_365d,
    avg(amount) FILTER (last_days(d, 365)) AS avg_amount_365d,
    max(amount) FILTER (last_days(d, 365)) AS max_amount_365d,
    count(*) FILTER (category IN ('储值卡', '疗程卡') AND last_days(d, 365)) AS prepaid_365d,
    count(*) FILTER (discount > 0 AND last_days(d, 180)) AS discounted_180d,
    count(*) FILTER (campaign IN ('双11', '双十一') AND last_days(d, 365)) AS double11_365d
FROM od
GROUP BY oneid
;

-- "most frequent" preferences ------------------------------------------------
-- Raw values go through the tag's map (unmapped values are ignored); the value with
-- the most rows wins, ties to the one seen last (latest time, then latest row).
CREATE OR REPLACE TEMP TABLE concern_map(raw, code) AS VALUES
    ('痘痘', 'acne'), ('痘印', 'acne'), ('闭口粉刺', 'acne'), ('色斑', 'pigmentation'),
    ('雀斑', 'pigmentation'), ('黄褐斑', 'pigmentation'), ('暗沉', 'dullness'), ('肤色不均', 'dullness'),
    ('皱纹', 'wrinkles'), ('细纹', 'wrinkles'), ('法令纹', 'wrinkles'), ('抬头纹', 'wrinkles'),
    ('松弛', 'sagging'), ('下垂', 'sagging'), ('毛孔粗大', 'pores'), ('毛孔', 'pores'),
    ('泛红', 'redness'), ('红血丝', 'redness'), ('敏感', 'redness'), ('轮廓', 'contour'),
    ('双下巴', 'contour'), ('咬肌', 'contour')
;

CREATE OR REPLACE TEMP TABLE project_type_map(raw, code) AS VALUES
    ('光电', 'photoelectric'), ('光电类', 'photoelectric'), ('注射', 'injection'), ('注射类', 'injection'),
    ('微整注射', 'injection'), ('皮肤管理', 'skin_care'), ('手术', 'surgery'), ('手术类', 'surgery'),
    ('整形手术', 'surgery')
;

CREATE OR REPLACE TEMP TABLE channel_map(raw, code) AS VALUES
    ('store', 'store'), ('miniprogram', 'miniprogram'), ('wecom', 'wecom'), ('tmall', 'tmall'),
    ('jd', 'jd'), ('douyin', 'douyin'), ('wechat_oa', 'other'), ('wechat_channels', 'other'),
    ('xiaohongshu', 'other'), ('crm', 'other'), ('app', 'other'), ('web', 'other'), ('sms', 'other'),
    ('call_center', 'other')
;

CREATE OR REPLACE TEMP TABLE campaign_map(raw, code) AS VALUES
    ('三八女神节', 'womens_day'), ('女神节', 'womens_day'), ('三八节', 'womens_day'), ('520', 'may20'),
    ('告白季', 'may20'), ('七夕', 'qixi'), ('双11', 'double11'), ('双十一', 'double11'),
    ('双12', 'double12'), ('双十二', 'double12'), ('周年庆', 'anniversary'), ('院庆', 'anniversary')
;

CREATE OR REPLACE TEMP TABLE pref_concern AS
SELECT oneid, code AS aesthetic_concern
FROM (
    SELECT ev.oneid, m.code, count(*) AS n, max(ev.time) AS last_time, max(ev.row_no) AS last_row
    FROM ev JOIN concern_map m ON ev.concern = m.raw
    WHERE ev.type IN ('consultation', 'survey') AND last_days(ev.d, 365)
    GROUP BY ev.oneid, m.code
)
QUALIFY row_number() OVER (PARTITION BY oneid ORDER BY n DESC, last_time DESC, last_row DESC) = 1
;

CREATE OR REPLACE TEMP TABLE pref_project_type AS
SELECT oneid, code AS preferred_project_type
FROM (
    SELECT ev.oneid, m.code, count(*) AS n, max(ev.time) AS last_time, max(ev.row_no) AS last_row
    FROM ev JOIN project_type_map m ON ev.project_type = m.raw
    WHERE ev.type = 'treatment' AND last_days(ev.d, 365)
    GROUP BY ev.oneid, m.code
)
QUALIFY row_number() OVER (PARTITION BY oneid ORDER BY n DESC, last_time DESC, last_row DESC) = 1
;

CREATE OR REPLACE TEMP TABLE pref_channel AS
SELECT oneid, code AS channel_pref
FROM (
    SELECT od.oneid, m.code, count(*) AS n, max(od.time) AS last_time, max(od.row_no) AS last_row
    FROM od JOIN channel_map m ON od.channel = m.raw
    WHERE last_days(od.d, 365)
    GROUP BY od.oneid, m.code
)
QUALIFY row_number() OVER (PARTITION BY oneid ORDER BY n DESC, last_time DESC, last_row DESC) = 1
;

CREATE OR REPLACE TEMP TABLE pref_festival AS
SELECT oneid, code AS main_festival
FROM (
    SELECT od.oneid, m.code, count(*) AS n, max(od.time) AS last_time, max(od.row_no) AS last_row
    FROM od JOIN campaign_map m ON od.campaign = m.raw
    WHERE od.campaign <> '' AND last_days(od.d, 730)
    GROUP BY od.oneid, m.code
)
QUALIFY row_number() OVER (PARTITION BY oneid ORDER BY n DESC, last_time DESC, last_row DESC) = 1
;

-- the tags: base tags, then the composites reading them (the result of the script) ---
WITH people AS (
    SELECT oneid FROM profiles WHERE oneid IS NOT NULL
    UNION SELECT oneid FROM events WHERE oneid IS NOT NULL
    UNION SELECT oneid FROM orders WHERE oneid IS NOT NULL
),
base AS (
SELECT
    people.oneid,
    -- basic / demographics and membership
    CASE WHEN p.gender IN ('female', 'male', 'unknown') THEN p.gender END AS gender,
    p.age::DOUBLE AS age,
    CASE
        WHEN p.age < 18 THEN 'under_18'
        WHEN p.age >= 18 AND p.age < 25 THEN 'age_18_24'
        WHEN p.age >= 25 AND p.age < 30 THEN 'age_25_29'
        WHEN p.age >= 30 AND p.age < 35 THEN 'age_30_34'
        WHEN p.age >= 35 AND p.age < 40 THEN 'age_35_39'
        WHEN p.age >= 40 AND p.age < 50 THEN 'age_40_49'
        WHEN p.age >= 50 THEN 'age_50_plus'
    END AS age_group,
    CASE
        WHEN p.city IS NULL OR p.city = '' THEN 'unknown'
        WHEN p.city IN ('北京', '上海', '广州', '深圳') THEN 'tier1'
        WHEN p.city IN (
            '成都', '重庆', '杭州', '武汉', '苏州', '西安', '南京', '长沙', '天津', '郑州', '东莞', '无锡', '宁波',
            '青岛', '合肥'
        ) THEN 'new_tier1'
        WHEN p.city IN (
            '佛山', '沈阳', '昆明', '济南', '厦门', '福州', '温州', '哈尔滨', '石家庄', '大连', '南宁', '泉州', '金华',
            '贵阳', '常州', '长春', '南昌', '南通', '嘉兴', '徐州', '惠州', '太原', '台州', '绍兴', '保定', '中山',
            '潍坊', '临沂', '珠海', '烟台'
        ) THEN 'tier2'
        ELSE 'lower_tier'
    END AS city_tier,
    CASE p.member_level
        WHEN '普卡' THEN 'regular' WHEN '银卡' THEN 'silver' WHEN '金卡' THEN 'gold'
        WHEN '铂金卡' THEN 'platinum' WHEN '黑钻卡' THEN 'black_diamond'
        WHEN 'regular' THEN 'regular' WHEN 'silver' THEN 'silver' WHEN 'gold' THEN 'gold'
        WHEN 'platinum' THEN 'platinum' WHEN 'black_diamond' THEN 'black_diamond'
    END AS member_level,
    p.points::DOUBLE AS points_balance,
    CASE
        WHEN p.points < 1 THEN 'none'
        WHEN p.points >= 1 AND p.points < 1000 THEN 'low'
        WHEN p.points >= 1000 AND p.points < 5000 THEN 'medium'
        WHEN p.points >= 5000 THEN 'high'
    END AS points_balance__bucket,
    coalesce(p.registered_days < 30, false) AS new_member_30d,
    CASE
        WHEN p.source_channel IN ('wechat_oa', 'wecom', 'miniprogram', 'wechat_channels') THEN 'wechat'
        WHEN p.source_channel = 'douyin' THEN 'douyin'
        WHEN p.source_channel = 'xiaohongshu' THEN 'xiaohongshu'
        WHEN p.source_channel IN ('tmall', 'jd') THEN 'ecommerce'
        WHEN p.source_channel = 'store' THEN 'store'
        WHEN p.source_channel IN ('crm', 'app', 'web', 'sms', 'call_center') THEN 'other'
    END AS source_channel,
    CASE
        WHEN p.skin_type IN ('油性', '油皮', 'oily') THEN 'oily'
        WHEN p.skin_type IN ('干性', '干皮', 'dry') THEN 'dry'
        WHEN p.skin_type IN ('混合性', '混油', '混干', 'combination') THEN 'combination'
        WHEN p.skin_type IN ('中性', 'normal') THEN 'normal'
        WHEN p.skin_type IN ('敏感性', '敏感肌', 'sensitive') THEN 'sensitive'
    END AS skin_type,
    pc.aesthetic_concern,
    -- store visits
    coalesce(e.visits_90d, 0)::DOUBLE AS store_visits_90d,
    CASE
        WHEN coalesce(e.visits_90d, 0) < 1 THEN 'none'
        WHEN coalesce(e.visits_90d, 0) < 2 THEN 'once'
        WHEN coalesce(e.visits_90d, 0) < 4 THEN 'few'
        ELSE 'frequent'
    END AS store_visits_90d__bucket,
    (getvariable('today') - e.last_visit_d)::DOUBLE AS last_visit_days,
    coalesce(e.visits_1d, 0) >= 1 AS visited_today,
    CASE
        WHEN coalesce(e.visits_365d, 0) < 1 THEN 'none'
        WHEN coalesce(e.visits_365d, 0) < 3 THEN 'occasional'
        WHEN coalesce(e.visits_365d, 0) < 6 THEN 'regular'
        WHEN coalesce(e.visits_365d, 0) < 12 THEN 'frequent'
        ELSE 'very_frequent'
    END AS visit_frequency,
    -- treatments
    coalesce(e.treatments_365d, 0)::DOUBLE AS treatments_365d,
    CASE
        WHEN coalesce(e.treatments_365d, 0) < 1 THEN 'none'
        WHEN coalesce(e.treatments_365d, 0) < 3 THEN 'light'
        WHEN coalesce(e.treatments_365d, 0) < 6 THEN 'medium'
        ELSE 'heavy'
    END AS treatments_365d__bucket,
    (getvariable('today') - e.last_treatment_d)::DOUBLE AS last_treatment_days,
    pt.preferred_project_type,
    coalesce(e.photoelectric_365d, 0) >= 1 AS photoelectric_user,
    coalesce(e.injection_365d, 0) >= 1 AS injection_user,
    coalesce(e.skin_mgmt_180d, 0) >= 4 AS skin_mgmt_regular,
    coalesce(e.anti_aging_365d, 0) >= 1 AS anti_aging_user,
    coalesce(getvariable('today') - e.last_botox_d BETWEEN 120 AND 180, false) AS botox_revisit_window,
    coalesce(getvariable('today') - e.last_filler_d BETWEEN 180 AND 365, false) AS filler_revisit_window,
    coalesce(e.treatments_7d, 0) >= 1 AND coalesce(e.follow_ups_7d, 0) = 0 AS postop_followup_due,
    CASE
        WHEN e.satisfaction_180d < 3 THEN 'dissatisfied'
        WHEN e.satisfaction_180d >= 3 AND e.satisfaction_180d < 4 THEN 'neutral'
        WHEN e.satisfaction_180d >= 4 THEN 'satisfied'
    END AS postop_satisfaction,
    -- consultation and service
    coalesce(e.consultations_90d, 0)::DOUBLE AS consultations_90d,
    coalesce(e.consultations_30d, 0) >= 1 AND coalesce(o.orders_30d, 0) = 0 AS consult_no_deal_30d,
    coalesce(e.appointments_7d, 0) >= 1 AND coalesce(e.visits_7d, 0) = 0 AS appointment_no_show,
    -- online
    coalesce(e.mp_views_30d, 0) >= 1 AS mp_active_30d,
    coalesce(e.content_30d, 0) >= 3 AS content_seeded_30d,
    pch.channel_pref,
    -- RFM and spending
    (getvariable('today') - o.last_order_d)::DOUBLE AS recency_days,
    CASE
        WHEN getvariable('today') - o.last_order_d < 30 THEN 'within_30d'
        WHEN getvariable('today') - o.last_order_d < 90 THEN 'd30_90'
        WHEN getvariable('today') - o.last_order_d < 180 THEN 'd90_180'
        WHEN getvariable('today') - o.last_order_d < 365 THEN 'd180_365'
        WHEN getvariable('today') - o.last_order_d >= 365 THEN 'over_365d'
    END AS recency_days__bucket,
    coalesce(o.orders_365d, 0)::DOUBLE AS order_count_365d,
    coalesce(o.spend_365d, 0)::DOUBLE AS spend_365d,
    CASE
        WHEN coalesce(o.spend_365d, 0) < 5000 THEN 'under_5k'
        WHEN coalesce(o.spend_365d, 0) < 20000 THEN 'k5_20'
        WHEN coalesce(o.spend_365d, 0) < 50000 THEN 'k20_50'
        WHEN coalesce(o.spend_365d, 0) < 100000 THEN 'k50_100'
        ELSE 'over_100k'
    END AS spend_365d__bucket,
    o.avg_amount_365d::DOUBLE AS avg_order_value,
    CASE
        WHEN o.avg_amount_365d < 1000 THEN 'under_1k'
        WHEN o.avg_amount_365d >= 1000 AND o.avg_amount_365d < 5000 THEN 'k1_5'
        WHEN o.avg_amount_365d >= 5000 AND o.avg_amount_365d < 10000 THEN 'k5_10'
        WHEN o.avg_amount_365d >= 10000 THEN 'over_10k'
    END AS avg_order_value__bucket,
    coalesce(o.max_amount_365d >= 10000, false) AS high_ticket_buyer,
    coalesce(o.prepaid_365d, 0) >= 1 AS stored_value_holder,
    -- coupons
    CASE
        WHEN coalesce(e.coupons_used_180d, 0) >= 3 OR coalesce(o.discounted_180d, 0) >= 3 THEN 'high'
        WHEN coalesce(e.coupons_used_180d, 0) >= 1 THEN 'medium'
        WHEN coalesce(e.coupons_received_180d, 0) >= 1 THEN 'low'
        ELSE 'none'
    END AS coupon_sensitivity,
    coalesce(e.coupons_used_180d, 0)::DOUBLE AS coupons_used_180d,
    -- WeCom
    CASE p.wecom_added WHEN 'yes' THEN true WHEN 'no' THEN false END AS wecom_added,
    coalesce(e.wecom_chats_30d, 0)::DOUBLE AS wecom_chats_30d,
    coalesce(e.wecom_deletes_90d, 0) >= 1 AS wecom_deleted_90d,
    -- campaigns
    pf.main_festival,
    coalesce(o.double11_365d, 0) >= 1 AS double11_buyer,
    -- churn, value and risk (no purchase = no usable order at all)
    CASE
        WHEN coalesce(o.orders_all, 0) = 0 THEN 'no_purchase'
        WHEN getvariable('today') - o.last_order_d >= 365 THEN 'lost'
        WHEN getvariable('today') - o.last_order_d >= 180 AND coalesce(e.visits_90d, 0) = 0 THEN 'high'
        WHEN getvariable('today') - o.last_order_d >= 180
            OR (getvariable('today') - o.last_order_d >= 90 AND coalesce(e.touches_60d, 0) = 0) THEN 'medium'
        ELSE 'low'
    END AS churn_risk,
    CASE
        WHEN coalesce(getvariable('today') - o.last_order_d < 180, false)
            AND (coalesce(e.consult_appt_30d, 0) >= 1 OR coalesce(e.wecom_chats_30d, 0) >= 2) THEN 'high'
        WHEN coalesce(getvariable('today') - o.last_order_d < 365, false)
            AND coalesce(e.engaged_90d, 0) >= 1 THEN 'medium'
        ELSE 'low'
    END AS repurchase_propensity,
    CASE
        WHEN coalesce(e.complaints_90d, 0) >= 1 OR coalesce(e.refunds_180d, 0) >= 2
            OR coalesce(e.satisfaction_180d < 3, false) THEN 'high'
        WHEN coalesce(e.complaints_365d, 0) >= 1 OR coalesce(e.refunds_180d, 0) >= 1 THEN 'medium'
        ELSE 'low'
    END AS complaint_risk,
    -- inputs of the composites below
    coalesce(o.orders_all, 0) AS orders_all,
    coalesce(e.appointments_90d, 0) AS appointments_90d,
    coalesce(e.views_carts_30d, 0) AS views_carts_30d
FROM people
LEFT JOIN profiles p ON p.oneid = people.oneid
LEFT JOIN ev_metrics e ON e.oneid = people.oneid
LEFT JOIN od_metrics o ON o.oneid = people.oneid
LEFT JOIN pref_concern pc ON pc.oneid = people.oneid
LEFT JOIN pref_project_type pt ON pt.oneid = people.oneid
LEFT JOIN pref_channel pch ON pch.oneid = people.oneid
LEFT JOIN pref_festival pf ON pf.oneid = people.oneid
),
rfm AS (
SELECT
    base.*,
    CASE
        WHEN orders_all = 0 THEN 'no_purchase'
        WHEN coalesce(recency_days < 180, false) AND order_count_365d >= 2 AND spend_365d >= 20000
            THEN 'important_value'
        WHEN coalesce(recency_days < 180, false) AND order_count_365d < 2 AND spend_365d >= 20000
            THEN 'important_develop'
        WHEN coalesce(recency_days >= 180, false) AND order_count_365d >= 2 AND spend_365d >= 20000
            THEN 'important_retain'
        WHEN coalesce(recency_days >= 180, false) AND order_count_365d < 2 AND spend_365d >= 20000
            THEN 'important_winback'
        WHEN coalesce(recency_days < 180, false) AND order_count_365d >= 2 THEN 'general_value'
        WHEN coalesce(recency_days < 180, false) THEN 'general_develop'
        WHEN order_count_365d >= 2 THEN 'general_retain'
        ELSE 'general_winback'
    END AS rfm_segment
FROM base
)
SELECT
    rfm.* EXCLUDE (orders_all, appointments_90d, views_carts_30d),
    coalesce(rfm.skin_type = 'sensitive', false)
        OR coalesce(rfm.aesthetic_concern = 'redness', false) AS sensitive_skin,
    rfm.rfm_segment IN ('important_value', 'important_develop', 'important_retain', 'important_winback')
        AND rfm.churn_risk IN ('medium', 'high') AS high_value_at_risk,
    CASE
        WHEN rfm.order_count_365d >= 2 THEN 'loyalty'
        WHEN rfm.order_count_365d >= 1 THEN 'purchase'
        WHEN rfm.consultations_90d >= 1 OR rfm.content_seeded_30d OR rfm.appointments_90d >= 1
            OR rfm.views_carts_30d >= 3 THEN 'interest'
        ELSE 'awareness'
    END AS aipl_stage,
    coalesce(rfm.age >= 30, false)
        AND coalesce(rfm.aesthetic_concern IN ('wrinkles', 'sagging'), false)
        AND NOT rfm.anti_aging_user AS anti_aging_prospect
FROM rfm
