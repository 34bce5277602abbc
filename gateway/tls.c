/* tls.c -- TLS options of the lws context, and SIGHUP certificate reload. */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "log.h"

#define PEM_MAX_BYTES (1 << 20)

void cg_tls_configure(struct lws_context_creation_info *info, const struct cg_config *cfg)
{
    if (!cfg->tls_cert[0])
        return;
    /* TLS 1.2 minimum, AEAD suites with forward secrecy, HTTP/1.1 only (the upgrade
     * needs it); TLS 1.3 suites are OpenSSL's defaults. */
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = cfg->tls_cert;
    info->ssl_private_key_filepath = cfg->tls_key;
    info->ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                            SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION;
    info->ssl_cipher_list = "ECDHE+AESGCM:ECDHE+CHACHA20";
    info->alpn = "http/1.1";
}

/* The whole file at path (under PEM_MAX_BYTES) in a new NUL-terminated buffer, or NULL. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < PEM_MAX_BYTES &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = 0;
    }
    if (f)
        fclose(f);
    return buf;
}

/* 1 when cert (PEM) parses, key (PEM) parses, and the key belongs to the cert. */
static int pem_pair_ok(const char *cert, size_t clen, const char *key, size_t klen)
{
    BIO *cb = BIO_new_mem_buf(cert, (int)clen), *kb = BIO_new_mem_buf(key, (int)klen);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int ok = x && k && X509_check_private_key(x, k) == 1;
    EVP_PKEY_free(k);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
    ERR_clear_error();
    return ok;
}

int cg_tls_reload(struct lws_context *ctx, const struct cg_config *cfg)
{
    if (!cfg->tls_cert[0] || !ctx)
        return 0;
    size_t clen = 0, klen = 0;
    char *cert = slurp(cfg->tls_cert, &clen), *key = slurp(cfg->tls_key, &klen);
    int rc = -1;
    if (!cert || !key)
        cg_log(CG_LOG_ERROR, "tls reload failed", "reason=\"cannot read %s\"",
               cert ? "--tls-key" : "--tls-cert");
    else if (!pem_pair_ok(cert, clen, key, klen))
        /* lws would install a broken pair without a word: check it first, keep the old. */
        cg_log(CG_LOG_ERROR, "tls reload failed",
               "reason=\"certificate and key do not parse or do not match\"");
    else if (lws_tls_cert_updated(ctx, cfg->tls_cert, cfg->tls_key, cert, clen, key, klen))
        cg_log(CG_LOG_ERROR, "tls reload failed", "reason=\"certificate or key rejected\"");
    else
        rc = 0;
    if (!rc)
        cg_log(CG_LOG_INFO, "tls certificate reloaded", "cert=%s", cfg->tls_cert);
    if (key)
        OPENSSL_cleanse(key, klen);
    free(cert);
    free(key);
    return rc;
}
