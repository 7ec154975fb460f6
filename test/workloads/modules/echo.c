/* The network bench's TCP echo server, native (under runc): the same
 * server as the Wasm guests (edgeshim-workloads' components and
 * wasmedge_sockets): bind 0.0.0.0:<port>, then one connection after
 * another, echoing what it reads until the peer closes. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: echo <port>\n");
        return 2;
    }
    int server = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)atoi(argv[1]));
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    if (server < 0 || bind(server, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(server, 16) < 0) {
        perror("echo: listen");
        return 1;
    }
    static char buf[4096];
    for (;;) {
        int peer = accept(server, NULL, NULL);
        if (peer < 0) {
            perror("echo: accept");
            return 1;
        }
        ssize_t n;
        while ((n = read(peer, buf, sizeof buf)) > 0) {
            if (write(peer, buf, (size_t)n) != n) {
                break;
            }
        }
        close(peer);
    }
}
