import PipelineStore
import PipelineModel
/// The dashboard's one page: its style, its script and its chart are all here (no CDN, no
/// font, nothing fetched but the store's own /api/), so it works on a farm without internet.
/// It polls the API every 2 s; every value is put in with textContent, never as HTML.
enum DashboardPage {
    static let html = #"""
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>seqpipe</title>
    <style>
    body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
    header{background:#1d2330;color:#fff;padding:10px 18px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
    header h1{font-size:18px;margin:0}
    main{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px;padding:14px}
    section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 12px;overflow:auto}
    h2{font-size:15px;margin:2px 0 8px}
    table{border-collapse:collapse;width:100%}
    th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eef0f3;white-space:nowrap;font-variant-numeric:tabular-nums}
    td.wrap{white-space:normal}
    tr.job{cursor:pointer} tr.job:hover{background:#eef4ff}
    .bad{color:#b3261e;font-weight:600} .ok{color:#1e7b34} .muted{color:#6b7280}
    .filters{display:flex;gap:6px;flex-wrap:wrap;margin-bottom:6px} .filters input,.filters select{font:inherit}
    #detail{white-space:pre-wrap;font:12px ui-monospace,monospace;background:#f6f7f9;padding:6px;margin-top:6px}
    button{font:inherit;margin-right:6px}
    .legend span{margin-right:12px} .sw{display:inline-block;width:10px;height:10px;margin-right:4px}
    </style></head>
    <body>
    <header><h1>seqpipe</h1><span id="store"></span><span id="counts"></span><span id="queue"></span>
    <span class="muted">updated <span id="updated">never</span></span><span id="actions"></span></header>
    <main>
    <section id="devices-section"><h2>Devices</h2><table id="devices"><thead><tr><th>device</th><th>host</th><th>state</th><th>response</th><th>job</th><th>last hour</th><th>last day</th><th>why</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Finished per minute</h2><div class="legend" id="legend"></div><div id="chart"></div></section>
    <section><h2>Accounts</h2><table id="accounts"><thead><tr><th>account</th><th>today</th><th>state</th><th>last hour</th><th>last day</th><th></th></tr></thead><tbody></tbody></table></section>
    <section><h2>Jobs <span class="muted" id="jobcount"></span></h2>
    <div class="filters"><select id="f-status"><option value="">any status</option></select>
    <input id="f-account" placeholder="account"><input id="f-device" placeholder="device"><input id="f-error" placeholder="error type"><input id="f-q" placeholder="search"></div>
    <table id="jobs"><thead><tr><th>job</th><th>account</th><th>status</th><th>device</th><th>attempts</th><th>error</th></tr></thead><tbody></tbody></table>
    <div id="detail" hidden></div></section>
    <section><h2>Recurring jobs</h2><table id="recurring"><thead><tr><th>job</th><th>state</th><th>next run</th><th>last outcome</th><th>failures in a row</th><th>last error</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Alerts and checks</h2><table id="alerts"><tbody></tbody></table></section>
    </main>
    <script>
    const colors={success:"#2e9d4a",retryable:"#e0a400",permanent:"#c62828",infrastructure:"#5b6bd6"};
    const statuses=["pending","claimed","running","success","failed","retrying","cancelled"];
    let actions=false, selected=null;
    const $=id=>document.getElementById(id);
    for(const s of statuses){const o=document.createElement("option");o.value=s;o.textContent=s;$("f-status").appendChild(o);}
    function cell(row,text,cls){const td=document.createElement("td");td.textContent=text==null?"":String(text);if(cls)td.className=cls;row.appendChild(td);return td;}
    function fill(id,items,make){const body=document.querySelector("#"+id+" tbody");body.replaceChildren();for(const i of items){const tr=document.createElement("tr");make(tr,i);body.appendChild(tr);}}
    function rate(r){if(!r||!r.attempts)return "–";return Math.round(100*r.success_rate)+"% of "+r.attempts;}
    function ago(s){if(s==null)return "";if(s<90)return s+" s";if(s<5400)return Math.round(s/60)+" min";return (s/3600).toFixed(1)+" h";}
    function token(){let t=sessionStorage.getItem("seqpipe-token");if(!t){t=prompt("The token seqpipe serve printed at start:");if(t)sessionStorage.setItem("seqpipe-token",t);}return t||"";}
    async function act(path){const r=await fetch(path,{method:"POST",headers:{"Authorization":"Bearer "+token()}});const b=await r.json();if(r.status==401)sessionStorage.removeItem("seqpipe-token");alert(b.done||b.error);refresh();}
    async function get(path){const r=await fetch(path);if(!r.ok)throw new Error(path+": "+r.status);return r.json();}
    function drawChart(minutes){
      const w=Math.max(300,$("chart").clientWidth||600),h=160,n=minutes.length,bw=w/n;
      const totals=minutes.map(m=>Object.keys(colors).reduce((a,k)=>a+m[k],0)),max=Math.max(1,...totals);
      const ns="http://www.w3.org/2000/svg",svg=document.createElementNS(ns,"svg");
      svg.setAttribute("width",w);svg.setAttribute("height",h+18);svg.setAttribute("role","img");
      minutes.forEach((m,i)=>{let y=h;for(const k of Object.keys(colors)){if(!m[k])continue;const bh=m[k]/max*h;y-=bh;
        const r=document.createElementNS(ns,"rect");r.setAttribute("x",i*bw);r.setAttribute("y",y);r.setAttribute("width",Math.max(1,bw-0.5));r.setAttribute("height",bh);
        r.setAttribute("fill",colors[k]);r.setAttribute("class","bar "+k);const t=document.createElementNS(ns,"title");t.textContent=m.at+": "+m[k]+" "+k;r.appendChild(t);svg.appendChild(r);}});
      const label=document.createElementNS(ns,"text");label.setAttribute("x",0);label.setAttribute("y",h+14);label.setAttribute("font-size","11");
      label.textContent=(minutes[0]?minutes[0].at.slice(11,16):"")+" … "+(n?minutes[n-1].at.slice(11,16):"")+" UTC, at most "+max+" a minute";svg.appendChild(label);
      $("chart").replaceChildren(svg);
      $("legend").replaceChildren(...Object.entries(colors).map(([k,c])=>{const s=document.createElement("span");const b=document.createElement("i");b.className="sw";b.style.background=c;s.append(b,k+" "+minutes.reduce((a,m)=>a+m[k],0));return s;}));
    }
    async function showJob(id){
      selected=id;const j=await get("/api/jobs/"+encodeURIComponent(id));const d=$("detail");d.hidden=false;d.replaceChildren();
      const lines=["job "+j.id+" ("+j.status+"), account "+j.account+", device "+(j.device||"–")+", priority "+j.priority+", attempt "+j.attempt+" of "+j.attempt_limit,
        j.error?"error ("+(j.error_type||"")+"): "+j.error:"", j.waiting?"waiting: "+j.waiting:"", "payload: "+JSON.stringify(j.payload),"events:"];
      for(const e of j.events)lines.push("  "+e.at+"  "+e.kind+(e.device?"  "+e.device:"")+"  "+e.message);
      d.append(lines.filter(Boolean).join("\n"));
      if(actions){for(const a of ["retry","cancel"]){const b=document.createElement("button");b.textContent=a;b.onclick=()=>act("/api/jobs/"+encodeURIComponent(j.id)+"/"+a);d.prepend(b);}}
    }
    async function refresh(){
      try{
        const s=await get("/api/status");actions=s.actions;
        $("store").textContent=s.store;
        $("counts").textContent=s.counts?Object.entries(s.counts).filter(([k,v])=>v).map(([k,v])=>v+" "+k).join(", "):"";
        $("queue").textContent="queue "+s.queue+", "+s.finished_per_minute+"/min: "+s.queue_outlook;
        $("actions").replaceChildren();
        if(actions){const b=document.createElement("button");b.textContent="stop the run";b.onclick=()=>{if(confirm("Stop the orchestrator and its workers?"))act("/api/stop");};$("actions").append(b);}
        const running={};for(const w of s.workers||[])if(w.job)running[w.device]=w.job+(w.step?" ("+w.step+")":"");
        const waitingDevice=(s.waiting||[])[0];
        fill("devices",s.devices||[],(tr,d)=>{cell(tr,d.name);cell(tr,d.host||"");
          let state=d.healthy?"healthy":"UNHEALTHY";if(d.cooldown_until)state+=", held until "+d.cooldown_until.slice(11,19);
          if(d.server&&d.server.state)state+=", server "+d.server.state;if(d.phone)state+=", phone "+d.phone;
          cell(tr,state,d.healthy?"ok":"bad");cell(tr,d.response_ms==null?"–":d.response_ms+" ms");cell(tr,running[d.name]||"");
          cell(tr,rate(d.last_hour));cell(tr,rate(d.last_day));cell(tr,d.last_error||"","wrap");});
        fill("accounts",s.accounts||[],(tr,a)=>{cell(tr,a.name);cell(tr,a.daily_limit?a.today+"/"+a.daily_limit:a.today);
          cell(tr,a.paused?"PAUSED: "+(a.paused_reason||""):a.cooldown_until?"cooldown until "+a.cooldown_until.slice(11,19):a.rest_until?"resting until "+a.rest_until.slice(11,19):"ok",a.paused?"bad":"");
          cell(tr,rate(a.last_hour));cell(tr,rate(a.last_day));const td=cell(tr,"");
          if(actions&&a.paused){const b=document.createElement("button");b.textContent="resume";b.onclick=()=>act("/api/accounts/"+encodeURIComponent(a.name)+"/resume");td.append(b);}});
        fill("recurring",s.recurring||[],(tr,r)=>{cell(tr,r.name);cell(tr,r.state);cell(tr,r.next_due||"");
          const ok=r.last_success&&(!r.last_failure||r.last_success>r.last_failure);
          cell(tr,r.last_success||r.last_failure?(ok?"success "+r.last_success:"failed "+r.last_failure):(r.skip_reason?"skipped: "+r.skip_reason:""),ok?"ok":(r.last_failure?"bad":""));cell(tr,r.consecutive_failures,r.consecutive_failures?"bad":"");cell(tr,r.last_error||"","wrap");});
        fill("alerts",(s.alerts||[]).map(a=>["ALERT "+a.kind,a.message,"bad"]).concat((s.checks||[]).map(c=>[c.name,c.message,c.ok?"ok":"bad"])),(tr,a)=>{cell(tr,a[0],a[2]);cell(tr,a[1],"wrap");});
        const q=new URLSearchParams({status:$("f-status").value,account:$("f-account").value,device:$("f-device").value,error:$("f-error").value,q:$("f-q").value,limit:"300"});
        const jobs=await get("/api/jobs?"+q);$("jobcount").textContent=jobs.total+" matching";
        const reasons={};for(const w of s.waiting||[])reasons[w.job]=w.reason;
        fill("jobs",jobs.jobs,(tr,j)=>{tr.className="job";tr.onclick=()=>showJob(j.id);cell(tr,j.id);cell(tr,j.account);
          cell(tr,j.status,j.status=="failed"?"bad":j.status=="success"?"ok":"");cell(tr,j.device||"");cell(tr,j.attempt+"/"+j.attempt_limit);
          cell(tr,j.error?(j.error_type?j.error_type+": ":"")+j.error:(reasons[j.id]||""),"wrap");});
        drawChart((await get("/api/throughput?minutes=120")).minutes);
        if(selected)showJob(selected);
        $("updated").textContent=new Date().toISOString().slice(11,19)+" UTC";
      }catch(e){$("updated").textContent="failed: "+e.message;}
    }
    for(const id of ["f-status","f-account","f-device","f-error","f-q"])$(id).addEventListener("input",refresh);
    refresh();setInterval(refresh,2000);
    </script></body></html>
    """#
}
