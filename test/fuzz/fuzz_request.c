/* fuzz_request.c -- cg_request_parse (gateway/request.h) over hostile client messages.
 *
 * Input: one WebSocket text message. Parsed with the default configuration plus three
 * services (--service alerts --service orders.v2 --service a-b_c), then answered the way
 * dispatch.c answers: the error frame (code, message, echoed id), or the
 * reply of the action. Every frame must be one valid JSON object on one line, the
 * echoed id must be the JSON text of an integer or a short string, names must be valid
 * instrument names, history and interval fields must respect the configuration, and a send
 * must name a configured service (its sent answer and a reply carrying its data are encoded
 * too); unknown_service only for a send whose service is a string naming none. */
#include "fuzz_common.h"
#include "instrument.h"
#include "request.h"

static struct cg_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256], a0[] = "chartgate", f[] = "--service", s1[] = "alerts", s2[] = "orders.v2",
                   s3[] = "a-b_c";
    char *args[] = {a0, f, s1, f, s2, f, s3, NULL};
    FUZZ_CHECK(cg_config_load(&cfg, 7, args, "web", err, sizeof(err), NULL) == CG_CONFIG_OK);
    FUZZ_CHECK(cfg.nservices == 3);
    return 0;
}

static void check_id(const struct cg_request *req)
{
    FUZZ_CHECK(FUZZ_TERMINATED(req->id_json));
    const char *id = cg_request_id(req);
    if (!id)
        return;
    size_t n = strlen(id);
    FUZZ_CHECK(n <= CG_REQUEST_ID_JSON_MAX);
    json_error_t e;
    json_t *v = json_loadb(id, n, JSON_DECODE_ANY, &e);
    FUZZ_CHECK(v);
    FUZZ_CHECK(json_is_integer(v) || json_is_string(v));
    json_decref(v);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)id[i] >= 0x20);
}

static void answer(struct cg_request *req)
{
    const char *id = cg_request_id(req);
    switch (req->action) {
    case CG_ACTION_SUBSCRIBE:
    case CG_ACTION_UNSUBSCRIBE: {
        FUZZ_CHECK(req->nnames >= 1 && req->nnames <= CG_REQUEST_NAMES_MAX);
        int *recovered = calloc(req->nnames, sizeof(*recovered));
        FUZZ_CHECK(recovered);
        for (size_t i = 0; i < req->nnames; i++) {
            const char *s = req->names[i];
            FUZZ_CHECK(s && cg_instrument_valid(s, strlen(s)));
            uint64_t seq = 0;
            recovered[i] = cg_request_since(req, s, &seq) ? (int)(seq & 1) : -1;
        }
        if (req->action == CG_ACTION_UNSUBSCRIBE) {
            fuzz_check_new_frame(cg_frame_names("unsubscribed", id, req->names, req->nnames));
        } else {
            const char *inames[CG_CONFIG_INTERVALS_MAX];
            size_t ni = 0;
            FUZZ_CHECK(req->has_intervals || req->intervals == 0);
            FUZZ_CHECK(req->intervals >> cfg.nintervals == 0);
            for (uint32_t i = 0; i < cfg.nintervals; i++)
                if (req->intervals & (1u << i))
                    inames[ni++] = cfg.interval_names[i];
            FUZZ_CHECK(FUZZ_TERMINATED(req->epoch));
            FUZZ_CHECK(!req->epoch[0] || strlen(req->epoch) == 16);
            FUZZ_CHECK(!req->since || json_is_object(req->since));
            fuzz_check_new_frame(cg_frame_subscribed(id, req->names, req->nnames, inames, ni,
                                                     "00112233445566ff", req->shared_epoch,
                                                     recovered));
        }
        free(recovered);
        break;
    }
    case CG_ACTION_LIST:
        fuzz_check_new_frame(cg_frame_names("instruments", id, NULL, 0));
        break;
    case CG_ACTION_SEARCH: {
        FUZZ_CHECK(FUZZ_TERMINATED(req->pattern));
        const char *names[] = {"rb2501"};
        fuzz_check_new_frame(cg_frame_names("instruments", id, names, 1));
        break;
    }
    case CG_ACTION_PING:
        fuzz_check_new_frame(cg_frame_pong(id));
        break;
    case CG_ACTION_HISTORY: {
        FUZZ_CHECK(FUZZ_TERMINATED(req->instrument));
        FUZZ_CHECK(cg_instrument_valid(req->instrument, strlen(req->instrument)));
        FUZZ_CHECK(req->interval < cfg.nintervals);
        FUZZ_CHECK(req->limit >= 1 && req->limit <= cfg.history_max);
        struct cg_bar bar = {req->before == INT64_MAX ? 0 : req->before, 1, 2, 0.5, 1.5, 10, 1};
        const struct cg_bar *second[] = {&bar};
        struct cg_frame_bars fb = {cfg.interval_names[req->interval], NULL, 0, second, 1};
        fuzz_check_new_frame(cg_frame_history(id, req->instrument, &fb));
        break;
    }
    case CG_ACTION_SEND: {
        FUZZ_CHECK(req->service < cfg.nservices);
        json_t *svc = json_object_get(req->root, "service");
        FUZZ_CHECK(json_is_string(svc) &&
                   !strcmp(json_string_value(svc), cfg.services[req->service]));
        FUZZ_CHECK(json_string_length(svc) == strlen(cfg.services[req->service]));
        FUZZ_CHECK(req->data && req->data == json_object_get(req->root, "data"));
        fuzz_check_new_frame(cg_frame_sent(id));
        /* what a service's reply carrying the client's data would look like */
        char *text = json_dumps(req->data, JSON_COMPACT | JSON_ENCODE_ANY);
        FUZZ_CHECK(text);
        fuzz_check_new_frame(cg_frame_reply(cfg.services[req->service], id, text, strlen(text)));
        free(text);
        break;
    }
    default:
        FUZZ_CHECK(!"unknown action");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_dup(data, size);
    struct cg_request req;
    struct cg_request_error err;
    int rc = cg_request_parse(text, size, &cfg, &req, &err);
    FUZZ_CHECK(rc == 0 || rc == -1);
    check_id(&req);
    if (rc) {
        FUZZ_CHECK(err.code > CG_ERR_NONE && err.code < CG_ERR__COUNT);
        FUZZ_CHECK(FUZZ_TERMINATED(err.message) && err.message[0]);
        if (err.code == CG_ERR_UNKNOWN_SERVICE) {
            json_t *svc = json_object_get(req.root, "service");
            FUZZ_CHECK(req.action == CG_ACTION_SEND && json_is_string(svc));
            FUZZ_CHECK(json_object_get(req.root, "data")); /* bad_request comes first */
            FUZZ_CHECK(cg_config_service(&cfg, json_string_value(svc), json_string_length(svc)) <
                           0 ||
                       strlen(json_string_value(svc)) != json_string_length(svc));
        }
        fuzz_check_new_frame(
            cg_frame_error(cg_errcode_name(err.code), err.message, cg_request_id(&req)));
    } else {
        FUZZ_CHECK(err.code == CG_ERR_NONE);
        FUZZ_CHECK(req.root);
        answer(&req);
    }
    cg_request_finish(&req);
    FUZZ_CHECK(!req.root && !req.names);
    free(text);
    return 0;
}
